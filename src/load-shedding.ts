/**
 * `LoadShedder`: tells a server when to turn work away (503 + `Retry-After`)
 * because the event loop is lagging or saturated.
 *
 * @module
 */
import { monitorEventLoop, type EventLoopMonitor, type EventLoopSample } from './event-loop.js';
import type { OverloadReason } from './channels.js';
import { publishShed } from './internal/publish.js';
import { assertOptions, describe } from './internal/validate.js';

/**
 * Options for {@link LoadShedder}.
 *
 * @category Event loop
 */
export interface LoadShedderOptions {
  /**
   * Where the figures come from: a {@link monitorEventLoop} monitor (or anything with a
   * `snapshot()` returning an {@link EventLoopSample}). It is not stopped with the shedder.
   * @defaultValue a monitor of its own, with 500 ms windows, stopped when the shedder is disposed
   */
  monitor?: Pick<EventLoopMonitor, 'snapshot'> | undefined;
  /**
   * Shed when the last window's worst lag (one long block counts) is above this many milliseconds (`Infinity`: never for lag).
   * @defaultValue `200`
   */
  maxLagMs?: number | undefined;
  /**
   * Shed when the last window's utilisation is above this share, from 0 to 1 (`Infinity`: never for utilisation).
   * @defaultValue `0.98`
   */
  maxUtilization?: number | undefined;
  /**
   * The largest `Retry-After` suggested, in whole seconds (≥ 1).
   * @defaultValue `30`
   */
  maxRetryAfterSeconds?: number | undefined;
}

/**
 * What {@link LoadShedder.check} decided. When `shed` is `true`, answer 503
 * with `Retry-After: retryAfterSeconds`.
 *
 * @category Event loop
 */
export type ShedDecision =
  | {
      /** Take the work. */
      readonly shed: false;
      /** The last window's worst event-loop lag, in ms. */
      readonly lagMs: number;
      /** The last window's event-loop utilisation, from 0 to 1. */
      readonly utilization: number;
    }
  | {
      /** Turn the work away (answer 503 with `Retry-After`). */
      readonly shed: true;
      /** The threshold passed (`'lag'` wins when both are). */
      readonly reason: OverloadReason;
      /** The last window's worst event-loop lag, in ms. */
      readonly lagMs: number;
      /** The last window's event-loop utilisation, from 0 to 1. */
      readonly utilization: number;
      /** Seconds the client should wait: how many times over the threshold the loop is, rounded up, from 1 to `maxRetryAfterSeconds`. */
      readonly retryAfterSeconds: number;
    };

const SHEDDER_OPTIONS = new Set(['monitor', 'maxLagMs', 'maxUtilization', 'maxRetryAfterSeconds']);

function readLimit(name: string, value: unknown, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw new TypeError(`Expected \`${name}\` to be a number, got ${describe(value)}`);
  if (!(value >= 0 && (value <= max || value === Number.POSITIVE_INFINITY))) {
    throw new RangeError(
      `Expected \`${name}\` to be a number from 0 to ${max === Number.POSITIVE_INFINITY ? 'Infinity' : String(max)}, got ${describe(value)}`,
    );
  }
  return value;
}

/**
 * Decides, request by request, whether the process is too busy to take more
 * work: the last event-loop window's worst lag above `maxLagMs`, or its
 * utilisation above `maxUtilization`. Cheap to call per request — it reads the
 * monitor's last sample, and measures nothing itself. Each shed decision is
 * published on `loopsafe:shed`. Disposable (stops its own monitor, if it made one).
 *
 * @category Event loop
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { LoadShedder } from 'loopsafe';
 *
 * using shedder = new LoadShedder({ maxLagMs: 200 });
 * const server = createServer((request, response) => {
 *   const decision = shedder.check();
 *   if (decision.shed) {
 *     response.writeHead(503, { 'Retry-After': String(decision.retryAfterSeconds) }).end();
 *     return;
 *   }
 *   response.end('ok');
 * });
 * console.log(shedder.check().shed); // false: an idle loop
 * server.close();
 * ```
 */
export class LoadShedder implements Disposable {
  readonly #monitor: Pick<EventLoopMonitor, 'snapshot'>;
  readonly #owned: EventLoopMonitor | undefined;
  readonly #maxLagMs: number;
  readonly #maxUtilization: number;
  readonly #maxRetryAfterSeconds: number;

  /**
   * @param options - `monitor`, `maxLagMs`, `maxUtilization`, `maxRetryAfterSeconds`.
   * @throws `TypeError`/`RangeError` (synchronously) for a bad option.
   */
  constructor(options?: LoadShedderOptions) {
    assertOptions('LoadShedder', options, SHEDDER_OPTIONS);
    this.#maxLagMs = readLimit('maxLagMs', options?.maxLagMs, 200, Number.POSITIVE_INFINITY);
    this.#maxUtilization = readLimit('maxUtilization', options?.maxUtilization, 0.98, 1);
    const maxRetryAfter = readLimit(
      'maxRetryAfterSeconds',
      options?.maxRetryAfterSeconds,
      30,
      Number.POSITIVE_INFINITY,
    );
    if (!(maxRetryAfter >= 1))
      throw new RangeError(`Expected \`maxRetryAfterSeconds\` to be at least 1, got ${describe(maxRetryAfter)}`);
    this.#maxRetryAfterSeconds = maxRetryAfter;
    const monitor = options?.monitor;
    if (monitor !== undefined && typeof (monitor as Partial<EventLoopMonitor> | null)?.snapshot !== 'function') {
      throw new TypeError(`Expected \`monitor\` to have a snapshot() method, got ${describe(monitor)}`);
    }
    this.#owned = monitor === undefined ? monitorEventLoop({ intervalMs: 500 }) : undefined;
    this.#monitor = monitor ?? (this.#owned as EventLoopMonitor);
  }

  /**
   * Decides whether to shed this request, from the monitor's last sample.
   * A shed decision is published on `loopsafe:shed`.
   *
   * @returns `{ shed: false, … }`, or `{ shed: true, reason, retryAfterSeconds, … }`.
   */
  check(): ShedDecision {
    const sample: EventLoopSample = this.#monitor.snapshot();
    // The worst lag of the window, not its p99: one long block is a single lag
    // sample (p99 misses it), yet every request queued behind it waited that long.
    const lagMs = sample.maxLagMs;
    const { utilization } = sample;
    const lagRatio = lagMs / this.#maxLagMs;
    const utilizationRatio = utilization / this.#maxUtilization;
    const reason: OverloadReason | undefined = lagRatio > 1 ? 'lag' : utilizationRatio > 1 ? 'utilization' : undefined;
    if (reason === undefined) return { shed: false, lagMs, utilization };
    const over = Math.max(lagRatio, utilizationRatio);
    const retryAfterSeconds = Math.min(
      this.#maxRetryAfterSeconds,
      Math.max(1, Number.isFinite(over) ? Math.ceil(over) : Number.POSITIVE_INFINITY),
    );
    publishShed(reason, lagMs, utilization, retryAfterSeconds);
    return { shed: true, reason, lagMs, utilization, retryAfterSeconds };
  }

  /** Stops the shedder's own monitor, if it made one (idempotent). */
  [Symbol.dispose](): void {
    this.#owned?.stop();
  }
}
