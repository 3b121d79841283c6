/**
 * Deadline scopes (timeout contexts): `withTimeout`, `withDeadline`,
 * `timeoutContext`, and the ambient scope that travels with the async context.
 *
 * @module
 */
import type { Clock } from './clock.js';
import { ambientScope, openScope, openScopes, runScoped, setStackCapture } from './internal/engine/index.js';
import {
  assertClock,
  assertDuration,
  assertFunction,
  assertOptionalBoolean,
  assertOptionalString,
  assertOptions,
  assertSignal,
  describe,
} from './internal/validate.js';

/**
 * A deadline scope: an absolute deadline on a monotonic clock, a signal that
 * aborts when the scope is cancelled or expires, and cooperative checks.
 *
 * A nested scope's deadline is `min(own, parent's)`, so an inner timeout can
 * never outlive an outer one. When a scope expires, its signal — and the
 * signals of every scope inside it — abort with its {@link TimeoutError}.
 *
 * Leaving a scope (its function settles, or its context is disposed) clears
 * its timer and unlinks it; it does not abort `signal`. Call `cancel()` to
 * stop the work inside. Only a {@link timeoutContext} is closed by
 * `[Symbol.dispose]`; a scope opened by {@link withTimeout} or
 * {@link withDeadline} closes when its function settles, and disposing it
 * early does nothing, so its deadline always holds.
 *
 * @category Scopes
 * @example
 * ```ts
 * import { withTimeout } from 'loopsafe';
 *
 * const body = await withTimeout(2_000, async (scope) => {
 *   console.log(scope.remaining() <= 2_000); // true
 *   return 'done'; // pass scope.signal to fetch(), streams, child processes…
 * });
 * console.log(body); // 'done'
 * ```
 */
export interface Scope extends Disposable {
  /** The scope's name, used in its {@link TimeoutError} and in {@link pendingScopes}. */
  readonly name: string;
  /**
   * Aborts when the scope is cancelled, expires, or an enclosing scope or outside signal aborts.
   * Read after the scope was left (in a late callback), it is aborted already if any of that has
   * happened, and it still aborts at the scope's deadline; a scope with no deadline is not
   * followed any further once left, so a finished scope is never kept linked for good.
   */
  readonly signal: AbortSignal;
  /** The effective deadline, `min(own, parent's)`, on the scope's clock; `Infinity` when there is none. */
  readonly deadline: number;
  /** The clock the scope's deadline is measured on; inherited by everything inside it. */
  readonly clock: Clock;
  /** The enclosing scope, if any. */
  readonly parent: Scope | undefined;
  /** `true` once the deadline has passed by the clock — even when no timer could fire yet. */
  readonly expired: boolean;
  /** Milliseconds left before the deadline: `Infinity` without one, `0` once passed or cancelled. */
  remaining(): number;
  /**
   * Throws if the scope is cancelled, or if its deadline has passed by the
   * clock — expiring it on the spot, so CPU-bound code that checks sees the
   * deadline on time even when no timer can fire.
   *
   * @throws the scope's abort reason: its {@link TimeoutError}, an enclosing scope's, or the caller's reason.
   */
  check(): void;
  /**
   * Cancels the scope and everything inside it: their signals abort with
   * `reason`, and a pending `withTimeout` rejects with it (`===`).
   *
   * @param reason - The abort reason. @defaultValue a `DOMException` named `AbortError`
   */
  cancel(reason?: unknown): void;
}

/**
 * Options for {@link withTimeout} and {@link withDeadline}.
 *
 * @category Scopes
 */
export interface ScopeOptions {
  /** An outside signal that cancels the scope; its reason passes through untouched. */
  signal?: AbortSignal | undefined;
  /**
   * The clock to measure the deadline on.
   * @defaultValue the enclosing scope's clock, else {@link systemClock}
   */
  clock?: Clock | undefined;
  /**
   * The scope's name, shown in its {@link TimeoutError} and in {@link pendingScopes}.
   * @defaultValue `fn.name`, else the function's name (`'withTimeout'`…)
   */
  name?: string | undefined;
}

const SCOPE_OPTIONS = new Set(['signal', 'clock', 'name']);
const NO_OPTIONS: ScopeOptions = /* @__PURE__ */ Object.freeze({});

function readOptions(fnName: string, options: ScopeOptions | undefined): ScopeOptions {
  assertOptions(fnName, options, SCOPE_OPTIONS);
  if (options === undefined) return NO_OPTIONS;
  assertSignal('signal', options.signal);
  assertClock('clock', options.clock);
  assertOptionalString('name', options.name);
  return options;
}

/**
 * Runs `fn(scope)` inside a child of the current scope whose deadline is
 * `timeoutMs` from now (or the enclosing deadline, if that comes first).
 *
 * At the deadline the scope's signal aborts and the returned promise rejects
 * with the scope's {@link TimeoutError} at once, without waiting for `fn`; a
 * late settlement of `fn` is absorbed. If the caller's `signal` aborts, it
 * rejects with that signal's reason (`===`). Inside `fn`, {@link currentScope},
 * {@link safeSleep} and every other loopsafe primitive see the scope with no
 * argument threaded through. If the deadline has already passed, `fn` is not
 * called.
 *
 * @param timeoutMs - Milliseconds from now; `Infinity` for a scope without a deadline of its own.
 * @param fn - The work. Receives the scope; may be sync or async.
 * @param options - `signal`, `clock`, `name`.
 * @returns `fn`'s result.
 * @throws {@link TimeoutError} (rejection) when this scope's deadline passes first; an enclosing scope's error when its deadline passes first.
 * @throws `TypeError`/`RangeError` (synchronously) for a bad `timeoutMs`, `fn` or option.
 * @category Scopes
 * @example
 * ```ts
 * import { safeSleep, withTimeout, isTimeoutError } from 'loopsafe';
 *
 * const hungUpstream = () => new Promise<never>(() => {});
 * try {
 *   await withTimeout(100, async () => {
 *     await safeSleep(10); // stops at the deadline if it must
 *     return hungUpstream();
 *   }, { name: 'fetch-profile' });
 * } catch (error) {
 *   console.log(isTimeoutError(error)); // true, after ~100 ms
 * }
 * ```
 */
export function withTimeout<T>(
  timeoutMs: number,
  fn: (scope: Scope) => T | PromiseLike<T>,
  options?: ScopeOptions,
): Promise<Awaited<T>> {
  assertDuration('timeoutMs', timeoutMs);
  assertFunction('fn', fn);
  const opts = readOptions('withTimeout', options);
  const scope = openScope({
    name: opts.name ?? (fn.name || 'withTimeout'),
    named: opts.name !== undefined || fn.name !== '',
    timeoutMs,
    signal: opts.signal,
    clock: opts.clock,
  });
  return runScoped(scope, fn) as Promise<Awaited<T>>;
}

/**
 * Like {@link withTimeout}, with an absolute deadline: a time on the scope's
 * clock (`performance.now()` for the system clock) or a `Date`, converted to
 * the clock once, on entry. A deadline in the past expires the scope at once
 * and `fn` is not called.
 *
 * @param deadline - A time on the scope's clock, or a `Date`.
 * @param fn - The work. Receives the scope; may be sync or async.
 * @param options - `signal`, `clock`, `name`.
 * @returns `fn`'s result.
 * @throws {@link TimeoutError} (rejection) when the deadline passes first.
 * @throws `TypeError`/`RangeError` (synchronously) for a bad deadline, `fn` or option.
 * @category Scopes
 * @example
 * ```ts
 * import { withDeadline } from 'loopsafe';
 *
 * const requestDeadline = new Date(Date.now() + 5_000);
 * const result = await withDeadline(requestDeadline, async (scope) => {
 *   return `${Math.round(scope.remaining() / 1000)} s left`;
 * });
 * console.log(result); // '5 s left'
 * ```
 */
export function withDeadline<T>(
  deadline: number | Date,
  fn: (scope: Scope) => T | PromiseLike<T>,
  options?: ScopeOptions,
): Promise<Awaited<T>> {
  assertDeadline(deadline);
  assertFunction('fn', fn);
  const opts = readOptions('withDeadline', options);
  const scope = openScope({
    name: opts.name ?? (fn.name || 'withDeadline'),
    named: opts.name !== undefined || fn.name !== '',
    deadline,
    signal: opts.signal,
    clock: opts.clock,
  });
  return runScoped(scope, fn) as Promise<Awaited<T>>;
}

function assertDeadline(deadline: unknown): asserts deadline is number | Date {
  if (deadline instanceof Date) {
    if (Number.isNaN(deadline.getTime()))
      throw new RangeError('Expected `deadline` to be a valid Date, got Invalid Date');
    return;
  }
  if (typeof deadline !== 'number') {
    throw new TypeError(
      `Expected \`deadline\` to be a number (a time on the clock) or a Date, got ${describe(deadline)}`,
    );
  }
  if (Number.isNaN(deadline)) throw new RangeError('Expected `deadline` to be a time on the clock, got NaN');
}

/**
 * Options for {@link timeoutContext}.
 *
 * @category Scopes
 */
export interface TimeoutContextOptions {
  /** An outside signal that cancels the context. */
  signal?: AbortSignal | undefined;
  /** @defaultValue the enclosing scope's clock, else {@link systemClock} */
  clock?: Clock | undefined;
  /** @defaultValue `'timeoutContext'` */
  name?: string | undefined;
}

/**
 * Opens a disposable scope for code that passes `ctx.signal` explicitly:
 * `using ctx = timeoutContext(30_000)`. It is a child of the current scope (its
 * deadline is `min(timeoutMs, enclosing)`) but does not become the ambient
 * scope itself. Disposing it clears its timer and unlinks it.
 *
 * @param timeoutMs - Milliseconds from now; `Infinity` for no deadline of its own.
 * @param options - `signal`, `clock`, `name`.
 * @returns The scope; dispose it (`using`, or `ctx[Symbol.dispose]()`) when done.
 * @throws `TypeError`/`RangeError` (synchronously) for a bad `timeoutMs` or option.
 * @category Scopes
 * @example
 * ```ts
 * import { timeoutContext, safeSleep } from 'loopsafe';
 *
 * {
 *   using ctx = timeoutContext(1_000, { name: 'report' });
 *   await safeSleep(5, { signal: ctx.signal });
 *   ctx.check(); // throws the TimeoutError once the deadline has passed
 * } // disposed here: its timer is gone
 * ```
 */
export function timeoutContext(timeoutMs: number, options?: TimeoutContextOptions): Scope {
  assertDuration('timeoutMs', timeoutMs);
  const opts = readOptions('timeoutContext', options);
  const scope = openScope({ name: opts.name ?? 'timeoutContext', timeoutMs, signal: opts.signal, clock: opts.clock });
  scope.makeDisposable();
  // A cancelled context has nothing left to own: it closes, as a disposed one does.
  if (scope.cancelled) scope.exit();
  else
    scope.onAbort(() => {
      scope.exit();
    });
  return scope;
}

/**
 * The ambient scope: the innermost {@link withTimeout}/{@link withDeadline}
 * (or `withSafeAsync`) scope of the current async context, or `undefined`
 * outside any. It travels with `AsyncLocalStorage`, so in the browser build
 * (which has none) it is always `undefined`: there, hand work the scope's
 * `signal`.
 *
 * @returns The current scope, or `undefined`.
 * @category Scopes
 * @example
 * ```ts
 * import { currentScope, withTimeout } from 'loopsafe';
 *
 * async function deepInTheCallTree() {
 *   return currentScope()?.remaining();
 * }
 * console.log(currentScope()); // undefined
 * console.log(((await withTimeout(1_000, deepInTheCallTree)) ?? 0) > 0); // true
 * ```
 */
export function currentScope(): Scope | undefined {
  return ambientScope();
}

/**
 * The ambient scope's signal, for APIs that take one: `fetch(url, { signal: currentSignal() })`.
 *
 * It is a loopsafe call like any other: read in a callback that runs after
 * its scope was left (a timer, an event handler started inside it), it links
 * that scope into the tree again while a deadline bounds it, so the signal
 * still aborts at the scope's deadline or when an enclosing scope is
 * cancelled before then, and the `fetch` it is handed is bounded too. A scope
 * with no deadline is only looked at: its signal is aborted if the scope or an
 * enclosing one was cancelled meanwhile, and the scope is not kept linked
 * (nothing would ever unlink it). Work that needs to follow later
 * cancellations should run in the scope, or in a scope of its own.
 *
 * @returns The current scope's signal, or `undefined` outside any scope.
 * @category Scopes
 * @example
 * ```ts
 * import { currentSignal, withTimeout } from 'loopsafe';
 *
 * await withTimeout(5_000, async () => {
 *   const signal = currentSignal();
 *   console.log(signal?.aborted); // false
 *   // await fetch('https://example.com', { signal });
 * });
 * ```
 */
export function currentSignal(): AbortSignal | undefined {
  return ambientScope()?.signal;
}

/**
 * A snapshot of one open scope, from {@link pendingScopes}.
 *
 * @category Diagnostics
 */
export interface PendingScope {
  /** The scope's name. */
  readonly name: string;
  /** Milliseconds since the scope opened, on its clock. */
  readonly ageMs: number;
  /** Milliseconds before its deadline (`Infinity` for none, `0` once passed or cancelled). */
  readonly remainingMs: number;
  /** Its deadline has passed (or it was cancelled) but its work has not finished. */
  readonly overdue: boolean;
  /** The enclosing scope's name, if any. */
  readonly parent: string | undefined;
  /** The live scope, for deeper inspection. */
  readonly scope: Scope;
  /** Where the scope was opened: only while {@link captureScopeStacks} is on when it opened. */
  readonly stack: string | undefined;
}

/**
 * Turns on (or off) recording where each new scope is opened, so
 * {@link pendingScopes} — and the stall watchdog built on it — can say which
 * code opened a stuck scope. Off by default: it costs a stack capture (a few
 * microseconds) per scope. Scopes opened while it was off have no stack.
 *
 * @param enabled - Record stacks for scopes opened from now on. @defaultValue `true`
 * @returns Whether it was on before.
 * @throws `TypeError` for a non-boolean `enabled`.
 * @category Diagnostics
 * @example
 * ```ts
 * import { captureScopeStacks, pendingScopes, withTimeout } from 'loopsafe';
 *
 * const before = captureScopeStacks(true);
 * await withTimeout(1_000, async () => {
 *   const mine = pendingScopes().find((s) => s.name === 'audit');
 *   console.log(mine?.stack?.includes('withTimeout')); // true
 * }, { name: 'audit' });
 * captureScopeStacks(before);
 * ```
 */
export function captureScopeStacks(enabled = true): boolean {
  assertOptionalBoolean('enabled', enabled);
  return setStackCapture(enabled);
}

/**
 * Lists the open scopes: `withTimeout`/`withDeadline` functions still running
 * (including ones past their deadline that ignored their signal — `overdue`)
 * and contexts not yet disposed. Oldest first. An overdue function that can
 * never settle (nothing references it any more) is dropped once garbage
 * collected: the registry never keeps work alive.
 *
 * @returns One entry per open scope.
 * @category Diagnostics
 * @example
 * ```ts
 * import { pendingScopes, withTimeout } from 'loopsafe';
 *
 * await withTimeout(1_000, async () => {
 *   const mine = pendingScopes().find((s) => s.name === 'checkout');
 *   console.log(mine?.overdue, mine?.parent); // false undefined
 * }, { name: 'checkout' });
 * console.log(pendingScopes().some((s) => s.name === 'checkout')); // false
 * ```
 */
export function pendingScopes(): PendingScope[] {
  return openScopes().map((scope) => ({
    name: scope.name,
    ageMs: scope.clock.now() - scope.createdAt,
    remainingMs: scope.remaining(),
    overdue: scope.cancelled || scope.expired,
    parent: scope.parent?.name,
    scope,
    stack: scope.origin,
  }));
}
