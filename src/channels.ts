/**
 * The `node:diagnostics_channel` channels loopsafe publishes on, and their
 * payload types. The channel names are the public contract
 * (`diagnostics_channel.subscribe('loopsafe:timeout', …)`); the publishing
 * side lives in `internal/publish.ts`.
 *
 * @module
 */
import type { QueueFullError, TimeoutError } from './errors.js';
import type { Scope } from './scope.js';

/**
 * The names of the `node:diagnostics_channel` channels loopsafe publishes on
 * (on Node, Bun and Deno; the browser build publishes nothing).
 *
 * @category Diagnostics
 * @example
 * ```ts
 * import diagnosticsChannel from 'node:diagnostics_channel';
 * import { channelNames, withTimeout, type TimeoutMessage } from 'loopsafe';
 *
 * const onTimeout = (message: unknown) => {
 *   const { scopeName, timeoutMs } = message as TimeoutMessage;
 *   console.log(`${scopeName} timed out after ${timeoutMs} ms`);
 * };
 * diagnosticsChannel.subscribe(channelNames.timeout, onTimeout);
 * await withTimeout(5, () => new Promise(() => {}), { name: 'slow' }).catch(() => {});
 * diagnosticsChannel.unsubscribe(channelNames.timeout, onTimeout);
 * ```
 */
export const channelNames = /* @__PURE__ */ Object.freeze({
  /** A scope's own deadline passed: {@link TimeoutMessage}. */
  timeout: 'loopsafe:timeout',
  /** A retry is about to wait before its next attempt: {@link RetryMessage}. */
  retry: 'loopsafe:retry',
  /** A gather stopped its running tasks: {@link GatherCancelMessage}. */
  gatherCancel: 'loopsafe:gather:cancel',
  /** The stall watchdog found work past its deadline, or unbounded work open too long: {@link StallMessage}. */
  stall: 'loopsafe:stall',
  /** A load shedder turned work away: {@link ShedMessage}. */
  shed: 'loopsafe:shed',
  /** A circuit breaker changed state: {@link CircuitMessage}. */
  circuit: 'loopsafe:circuit',
  /** A rate limiter turned an `acquire` away: {@link RateLimitMessage}. */
  rateLimit: 'loopsafe:rate-limit',
  /** A `safeRace` was won and its running losers aborted: {@link RaceMessage}. */
  race: 'loopsafe:race',
  /** A `hedge` started another attempt: {@link HedgeMessage}. */
  hedge: 'loopsafe:hedge',
  /** A `singleFlight` call shared a run in flight, or its last caller left and the run was aborted: {@link SingleFlightMessage}. */
  singleFlight: 'loopsafe:single-flight',
  /** A `Semaphore` with `maxQueue` turned a caller away: {@link QueueFullMessage}. */
  queueFull: 'loopsafe:queue-full',
  /**
   * The TracingChannel every scope is traced on (`tracing:loopsafe:scope:start`,
   * `:end`, `:asyncStart`, `:asyncEnd`, `:error`): {@link ScopeTraceContext}.
   * Subscribe with `diagnostics_channel.tracingChannel(channelNames.scope)`.
   */
  scope: 'loopsafe:scope',
} as const);

/**
 * How a traced scope ended: `'ok'` (its function fulfilled), `'timeout'` (a
 * deadline passed — its own or an enclosing scope's — or it failed with a
 * TimeoutError), `'cancelled'` (its signal, an enclosing scope or
 * `scope.cancel()` cancelled it) or `'error'` (its function failed).
 *
 * @category Diagnostics
 */
export type ScopeOutcome = 'ok' | 'timeout' | 'cancelled' | 'error';

/**
 * The context object of the `loopsafe:scope` TracingChannel, one per scope run
 * by `withTimeout`, `withDeadline`, `withSafeAsync` (each call), `retry` (and
 * each attempt, as a child scope), `safeGather`/`safeGatherSettled`,
 * `safeWaitFor` on a function, `Semaphore.run` and the policies. The same
 * object is published on each of the five channels, as node's
 * `tracePromise` does, in this order:
 *
 * - `start`, before the scope's function runs, inside `start.runStores`: a
 *   store bound with `channel.start.bindStore(als, transform)` is active in
 *   the function and in everything it starts (how APM tools bind a span);
 * - `end`, once the function's synchronous part has returned;
 * - `error` (when the scope's promise rejects), then `asyncStart` and
 *   `asyncEnd`, when the scope's outcome is known — at its deadline, promptly,
 *   even when the function ignores its signal.
 *
 * `outcome`, `result` and `error` are written in before `error`/`asyncStart`.
 * When nobody subscribes and no store is bound, a scope costs one
 * `hasSubscribers` read.
 *
 * @category Diagnostics
 * @example
 * ```ts
 * import diagnosticsChannel from 'node:diagnostics_channel';
 * import { channelNames, withTimeout, type ScopeTraceContext } from 'loopsafe';
 *
 * const scopes = diagnosticsChannel.tracingChannel<unknown, ScopeTraceContext>(channelNames.scope);
 * const log = (event: string) => (context: ScopeTraceContext) => {
 *   console.log(event, context.name, context.outcome ?? '');
 * };
 * const handlers = {
 *   start: log('start'),
 *   end: log('end'),
 *   asyncStart: log('asyncStart'),
 *   asyncEnd: log('asyncEnd'),
 *   error: log('error'),
 * };
 * scopes.subscribe(handlers);
 * await withTimeout(5, () => new Promise(() => {}), { name: 'slow' }).catch(() => {});
 * scopes.unsubscribe(handlers);
 * // start slow, end slow, then 5 ms later: error slow timeout, asyncStart slow timeout, asyncEnd slow timeout
 * ```
 */
export interface ScopeTraceContext {
  /** The scope's name. */
  readonly name: string;
  /**
   * Whether the name was given by the caller (a `name` option, the function's
   * own name, a policy's name), rather than a primitive's default
   * (`'withTimeout'`, `'retry'`, `'Semaphore.run'`…). `loopsafe/otel` makes a
   * span for named scopes only.
   */
  readonly named: boolean;
  /** The timeout it was given, in milliseconds; `Infinity` when it has no deadline of its own. */
  readonly timeoutMs: number;
  /** Its effective deadline (its own or an enclosing scope's, whichever comes first), on its clock; `Infinity` for none. */
  readonly deadline: number;
  /** The scope itself (its `parent`, `signal`, `remaining()`). */
  readonly scope: Scope;
  /** How it ended; `undefined` until `error`/`asyncStart`. */
  readonly outcome: ScopeOutcome | undefined;
  /** What its function fulfilled with, when `outcome` is `'ok'`. */
  readonly result: unknown;
  /** What it rejected with, when `outcome` is not `'ok'`. */
  readonly error: unknown;
}

/**
 * Published on `loopsafe:timeout` for every timeout loopsafe rejects with: a
 * scope's own deadline passes (or a `safeWaitFor`/`Semaphore.acquire`
 * timeout), before anything is aborted; or a `retry` gives up early because
 * its next wait would pass the deadline. `error` is the very error the caller
 * receives.
 *
 * @category Diagnostics
 */
export interface TimeoutMessage {
  /** The name of the scope that expired (as in {@link TimeoutError.scopeName}). */
  readonly scopeName: string;
  /** The timeout it was given, in milliseconds. */
  readonly timeoutMs: number;
  /** The error its signal aborts with and its operation rejects with. */
  readonly error: TimeoutError;
  /** The scope itself (its `parent`, `deadline`, `clock`); `undefined` for a light wait with no scope (`safeWaitFor` on a promise, `Semaphore.acquire`'s `timeout`). */
  readonly scope: Scope | undefined;
}

/**
 * Published on `loopsafe:retry` after an attempt failed and before the wait
 * that precedes the next one (when `onRetry` is called).
 *
 * @category Diagnostics
 */
export interface RetryMessage {
  /** The retry's name (its scope's name). */
  readonly name: string;
  /** The attempt that failed, counted from 1. */
  readonly attempt: number;
  /** How long retry waits before the next attempt, in milliseconds. */
  readonly delayMs: number;
  /** `'error'`: the attempt failed; `'result'`: its value was retried by `shouldRetryResult`. */
  readonly kind: 'error' | 'result';
  /** The failed attempt's error (any thrown value); `undefined` for a retried result. */
  readonly error: unknown;
  /** The retried result; `undefined` for a failure. */
  readonly value: unknown;
}

/**
 * Why a gather stopped its running tasks.
 *
 * @category Diagnostics
 */
export type GatherCancelCause = 'failure' | 'timeout' | 'abort';

/**
 * Published on `loopsafe:gather:cancel` when a gather stops: a task failed
 * (fail-fast), its own timeout passed, or its caller or an enclosing scope
 * cancelled it.
 *
 * @category Diagnostics
 */
export interface GatherCancelMessage {
  /** The gather's name. */
  readonly name: string;
  /** `'failure'` (a task failed), `'timeout'` (its own timeout) or `'abort'` (caller signal, enclosing scope). */
  readonly cause: GatherCancelCause;
  /** The failed task's error, the TimeoutError, or the abort reason. */
  readonly error: unknown;
  /** How many tasks were still running and were aborted. */
  readonly running: number;
}

/**
 * What the stall watchdog found.
 *
 * @category Diagnostics
 */
export type StallKind = 'overdue' | 'no-deadline';

/**
 * One stalled scope, passed to `watchStalls`' `onStall` and published on
 * `loopsafe:stall`. Each scope is reported once.
 *
 * @category Diagnostics
 */
export interface StallMessage {
  /**
   * `'overdue'`: the scope was cancelled or passed its deadline more than
   * `graceMs` ago and its function is still running (it ignored its signal).
   * `'no-deadline'`: a scope without a deadline has been open longer than `noDeadlineMs`.
   */
  readonly kind: StallKind;
  /** The scope's name. */
  readonly name: string;
  /** The enclosing scope's name, if any. */
  readonly parent: string | undefined;
  /** Milliseconds since the scope opened, on its clock. */
  readonly ageMs: number;
  /** Milliseconds since its deadline passed (or since it was seen cancelled); `0` for `'no-deadline'`. */
  readonly overdueMs: number;
  /** The live scope. */
  readonly scope: Scope;
  /** Where the scope was opened, while `captureScopeStacks()` is on; else `undefined`. */
  readonly stack: string | undefined;
}

/**
 * Which event-loop threshold was passed: lag, or utilisation.
 *
 * @category Event loop
 */
export type OverloadReason = 'lag' | 'utilization';

/**
 * Published on `loopsafe:shed` each time a load shedder turns work away.
 *
 * @category Diagnostics
 */
export interface ShedMessage {
  /** The threshold that was passed (`'lag'` wins when both are). */
  readonly reason: OverloadReason;
  /** The event-loop lag the decision was based on (the worst lag of the last window, its `maxLagMs`), in milliseconds. */
  readonly lagMs: number;
  /** The event-loop utilisation of the last window, from 0 to 1. */
  readonly utilization: number;
  /** The suggested `Retry-After`, in whole seconds. */
  readonly retryAfterSeconds: number;
}

/**
 * A circuit breaker's state: `'closed'` (calls go through and are counted),
 * `'open'` (calls are turned away at once), `'half-open'` (a few trial calls
 * decide whether to close or open again).
 *
 * @category Resilience policies
 */
export type CircuitState = 'closed' | 'open' | 'half-open';

/**
 * Why a circuit breaker changed state.
 *
 * - `'consecutive-failures'`: closed → open, `failureThreshold` failures in a row.
 * - `'failure-rate'`: closed → open, the share of failures in the window reached `failureRate`.
 * - `'open-elapsed'`: open → half-open, `openMs` passed (seen at the next call or `state` read).
 * - `'trial-failed'`: half-open → open, a trial call failed.
 * - `'trial-succeeded'`: half-open → closed, a trial call succeeded.
 * - `'reset'`: → closed, `reset()` was called.
 *
 * @category Resilience policies
 */
export type CircuitTransitionReason =
  'consecutive-failures' | 'failure-rate' | 'open-elapsed' | 'trial-failed' | 'trial-succeeded' | 'reset';

/**
 * Published on `loopsafe:circuit` each time a circuit breaker changes state.
 *
 * @category Diagnostics
 */
export interface CircuitMessage {
  /** The breaker's `name`. */
  readonly name: string;
  /** The state it left. */
  readonly from: CircuitState;
  /** The state it entered. */
  readonly to: CircuitState;
  /** Why. */
  readonly reason: CircuitTransitionReason;
  /** When, on the breaker's clock (`performance.now()` for the system clock), in milliseconds. */
  readonly at: number;
}

/**
 * Published on `loopsafe:rate-limit` each time a rate limiter's `acquire`
 * rejects with a `RateLimitError` (its wait would pass the deadline, or every
 * bucket of a keyed limiter has waiters). A `tryAcquire` that answers `false`
 * is an answer, not a rejection, and is not published. (Not `loopsafe:shed`:
 * its {@link ShedMessage} describes the event loop's lag and utilisation.)
 *
 * @category Diagnostics
 */
export interface RateLimitMessage {
  /** The limiter's `name`. */
  readonly name: string;
  /** The key, for a `KeyedRateLimiter`; `undefined` for a `RateLimiter`. */
  readonly key: unknown;
  /** The tokens asked for. */
  readonly cost: number;
  /** Milliseconds until they would be available (the error's `retryAfterMs`). */
  readonly retryAfterMs: number;
}

/**
 * Published on `loopsafe:race` when a {@link safeRace} is won: the winner's
 * index, and how many losers were still running and were aborted.
 *
 * @category Diagnostics
 */
export interface RaceMessage {
  /** The race's name. */
  readonly name: string;
  /** The index of the winning task in `tasks`. */
  readonly winner: number;
  /** How many other tasks were still running and were aborted. */
  readonly aborted: number;
}

/**
 * Why {@link hedge} started another attempt: its `delayMs` passed with no
 * attempt fulfilled, or an attempt failed (the next one starts at once).
 *
 * @category Diagnostics
 */
export type HedgeTrigger = 'delay' | 'failure';

/**
 * Published on `loopsafe:hedge` each time a {@link hedge} starts an attempt
 * after the first (a hedged attempt), before it runs.
 *
 * @category Diagnostics
 */
export interface HedgeMessage {
  /** The hedge's name. */
  readonly name: string;
  /** The attempt being started, counted from 1 (so ≥ 2). */
  readonly attempt: number;
  /** `'delay'`: `delayMs` passed with no attempt fulfilled; `'failure'`: an attempt failed. */
  readonly trigger: HedgeTrigger;
  /** Attempts still running beside it (the ones it hedges). */
  readonly running: number;
}

/**
 * What happened to a {@link singleFlight} run.
 *
 * @category Diagnostics
 */
export type SingleFlightEvent = 'join' | 'abandon';

/**
 * Published on `loopsafe:single-flight` when a call joins a run already in
 * flight for its key (`'join'`: one run saved), and when the last caller of
 * a run leaves before it settled (`'abandon'`: the run is aborted).
 *
 * @category Diagnostics
 */
export interface SingleFlightMessage {
  /** The single-flight's name. */
  readonly name: string;
  /** The key of the run. */
  readonly key: unknown;
  /** `'join'` or `'abandon'`. */
  readonly event: SingleFlightEvent;
  /** The callers waiting for the run after this event (`0` for `'abandon'`). */
  readonly callers: number;
}

/**
 * Published on `loopsafe:queue-full` each time a {@link Semaphore} created
 * with `maxQueue` rejects an `acquire` because its queue is full.
 *
 * @category Diagnostics
 */
export interface QueueFullMessage {
  /** The semaphore's name (`'Semaphore'` when it was given none). */
  readonly name: string;
  /** Its `maxQueue`. */
  readonly maxQueue: number;
  /** The error the caller receives. */
  readonly error: QueueFullError;
}
