/**
 * The publishing side of loopsafe's diagnostics channels: the channel objects
 * and helpers that cost one property read when nobody listens (each checks
 * `hasSubscribers` before building its message). Channels are looked up by
 * name, so the ESM and CJS builds — or two copies of the library — publish on
 * the same channel objects.
 *
 * @internal
 * @module
 */
import type {
  CircuitMessage,
  CircuitState,
  CircuitTransitionReason,
  RateLimitMessage,
  GatherCancelCause,
  GatherCancelMessage,
  HedgeMessage,
  HedgeTrigger,
  OverloadReason,
  QueueFullMessage,
  RaceMessage,
  RetryMessage,
  ShedMessage,
  SingleFlightEvent,
  SingleFlightMessage,
  StallMessage,
  TimeoutMessage,
} from '../channels.js';
import type { QueueFullError, TimeoutError } from '../errors.js';
import type { Scope } from '../scope.js';
import { publishChannel } from './platform.js';

// Literal names, not `channelNames.timeout`: a property read is not pure to a
// bundler, so it would keep all five channels in every tree-shaken bundle.
// test/channels.test.ts checks that each publishes under its `channelNames` name.
export const timeoutChannel = /* @__PURE__ */ publishChannel('loopsafe:timeout');
export const retryChannel = /* @__PURE__ */ publishChannel('loopsafe:retry');
export const gatherCancelChannel = /* @__PURE__ */ publishChannel('loopsafe:gather:cancel');
export const stallChannel = /* @__PURE__ */ publishChannel('loopsafe:stall');
export const shedChannel = /* @__PURE__ */ publishChannel('loopsafe:shed');
export const circuitChannel = /* @__PURE__ */ publishChannel('loopsafe:circuit');
export const rateLimitChannel = /* @__PURE__ */ publishChannel('loopsafe:rate-limit');
export const raceChannel = /* @__PURE__ */ publishChannel('loopsafe:race');
export const hedgeChannel = /* @__PURE__ */ publishChannel('loopsafe:hedge');
export const singleFlightChannel = /* @__PURE__ */ publishChannel('loopsafe:single-flight');
export const queueFullChannel = /* @__PURE__ */ publishChannel('loopsafe:queue-full');

/** Publishes a {@link TimeoutMessage}; builds nothing when nobody subscribes. */
export function publishTimeout(
  scopeName: string,
  timeoutMs: number,
  error: TimeoutError,
  scope: Scope | undefined,
): void {
  if (!timeoutChannel.hasSubscribers) return;
  const message: TimeoutMessage = { scopeName, timeoutMs, error, scope };
  timeoutChannel.publish(message);
}

/** Publishes a {@link RetryMessage}; builds nothing when nobody subscribes. */
export function publishRetry(
  name: string,
  attempt: number,
  delayMs: number,
  kind: 'error' | 'result',
  error: unknown,
  value: unknown,
): void {
  if (!retryChannel.hasSubscribers) return;
  const message: RetryMessage = { name, attempt, delayMs, kind, error, value };
  retryChannel.publish(message);
}

/** Publishes a {@link GatherCancelMessage}; builds nothing when nobody subscribes. */
export function publishGatherCancel(name: string, cause: GatherCancelCause, error: unknown, running: number): void {
  if (!gatherCancelChannel.hasSubscribers) return;
  const message: GatherCancelMessage = { name, cause, error, running };
  gatherCancelChannel.publish(message);
}

/** Publishes a {@link StallMessage} (already built for `onStall`). */
export function publishStall(message: StallMessage): void {
  if (stallChannel.hasSubscribers) stallChannel.publish(message);
}

/** Publishes a {@link ShedMessage}; builds nothing when nobody subscribes. */
export function publishShed(
  reason: OverloadReason,
  lagMs: number,
  utilization: number,
  retryAfterSeconds: number,
): void {
  if (!shedChannel.hasSubscribers) return;
  const message: ShedMessage = { reason, lagMs, utilization, retryAfterSeconds };
  shedChannel.publish(message);
}

/** Publishes a {@link CircuitMessage}; builds nothing when nobody subscribes. */
export function publishCircuit(
  name: string,
  from: CircuitState,
  to: CircuitState,
  reason: CircuitTransitionReason,
  at: number,
): void {
  if (!circuitChannel.hasSubscribers) return;
  const message: CircuitMessage = { name, from, to, reason, at };
  circuitChannel.publish(message);
}

/** Publishes a {@link RateLimitMessage}; builds nothing when nobody subscribes. */
export function publishRateLimit(name: string, key: unknown, cost: number, retryAfterMs: number): void {
  if (!rateLimitChannel.hasSubscribers) return;
  const message: RateLimitMessage = { name, key, cost, retryAfterMs };
  rateLimitChannel.publish(message);
}

/** Publishes a {@link RaceMessage}; builds nothing when nobody subscribes. */
export function publishRace(name: string, winner: number, aborted: number): void {
  if (!raceChannel.hasSubscribers) return;
  const message: RaceMessage = { name, winner, aborted };
  raceChannel.publish(message);
}

/** Publishes a {@link HedgeMessage}; builds nothing when nobody subscribes. */
export function publishHedge(name: string, attempt: number, trigger: HedgeTrigger, running: number): void {
  if (!hedgeChannel.hasSubscribers) return;
  const message: HedgeMessage = { name, attempt, trigger, running };
  hedgeChannel.publish(message);
}

/** Publishes a {@link SingleFlightMessage}; builds nothing when nobody subscribes. */
export function publishSingleFlight(name: string, key: unknown, event: SingleFlightEvent, callers: number): void {
  if (!singleFlightChannel.hasSubscribers) return;
  const message: SingleFlightMessage = { name, key, event, callers };
  singleFlightChannel.publish(message);
}

/** Publishes a {@link QueueFullMessage}; builds nothing when nobody subscribes. */
export function publishQueueFull(name: string, maxQueue: number, error: QueueFullError): void {
  if (!queueFullChannel.hasSubscribers) return;
  const message: QueueFullMessage = { name, maxQueue, error };
  queueFullChannel.publish(message);
}
