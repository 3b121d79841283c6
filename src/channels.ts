/**
 * The `node:diagnostics_channel` channels loopsafe publishes on, and their
 * payload types. The channel names are the public contract
 * (`diagnostics_channel.subscribe('loopsafe:timeout', …)`); the publishing
 * side lives in `internal/publish.ts`.
 *
 * @module
 */
import type { TimeoutError } from './errors.js';
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
  /** The failed attempt's error (any thrown value). */
  readonly error: unknown;
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
