/**
 * Errors raised by loopsafe, and guards that recognise them — and the
 * equivalent errors of the platform and of peer libraries — without relying on
 * `instanceof` alone.
 *
 * @module
 */

import { describeThrown } from './internal/stacks.js';
import {
  assertDuration,
  assertOptionalString,
  assertOptions,
  assertQueueLimit,
  describe,
} from './internal/validate.js';

const TIMEOUT_ERROR_OPTIONS = /* @__PURE__ */ new Set(['scopeName', 'timeoutMs', 'cause']);

/** How deep {@link isTimeoutError} and {@link isAbortError} follow `.cause`. */
const MAX_CAUSE_DEPTH = 16;

/**
 * Options for {@link TimeoutError}.
 *
 * @category Errors
 */
export interface TimeoutErrorOptions {
  /** The name of the scope whose deadline passed. */
  scopeName?: string | undefined;
  /** The timeout the scope was given, in milliseconds. */
  timeoutMs?: number | undefined;
  /** The underlying error, if any (for example the last attempt of a retry). */
  cause?: unknown;
}

/**
 * A scope's own deadline passed before its work settled.
 *
 * loopsafe rejects with this error when a {@link withTimeout},
 * {@link withDeadline}, {@link timeoutContext} or {@link safeWaitFor} deadline
 * expires, and aborts the scope's `signal` with the same object. Nested work
 * receives the error of the scope that actually expired, so `scopeName` always
 * names the scope whose deadline passed.
 *
 * The error is created only when a deadline actually passes (the fast path
 * creates nothing), and its stack is taken where the caller awaits the
 * operation, so it points at your code rather than at a timer callback.
 *
 * @category Errors
 * @example
 * ```ts
 * import { TimeoutError, withTimeout } from 'loopsafe';
 *
 * try {
 *   await withTimeout(50, () => new Promise(() => {}), { name: 'load-user' });
 * } catch (error) {
 *   if (error instanceof TimeoutError) {
 *     console.log(error.scopeName, error.timeoutMs); // 'load-user' 50
 *   }
 * }
 * ```
 */
export class TimeoutError extends Error {
  /** Always `'TimeoutError'`, the name peers and `isTimeoutError` recognise. */
  override readonly name = 'TimeoutError' as const;
  /** The timeout the scope was given, in milliseconds (`Infinity` if it had none of its own). */
  readonly timeoutMs: number;
  /** The name of the scope whose deadline passed. */
  readonly scopeName: string;

  /**
   * @param message - Human-readable description. Defaults to one built from `scopeName` and `timeoutMs`.
   * @param options - `scopeName`, `timeoutMs` and `cause`.
   * @throws `TypeError`/`RangeError` for a `message` that is not a string, or a bad option.
   */
  constructor(message?: string, options: TimeoutErrorOptions = {}) {
    assertOptionalString('message', message);
    assertOptions('TimeoutError', options, TIMEOUT_ERROR_OPTIONS);
    assertOptionalString('scopeName', options.scopeName);
    if (options.timeoutMs !== undefined) assertDuration('timeoutMs', options.timeoutMs);
    const scopeName = options.scopeName ?? 'anonymous';
    const timeoutMs = options.timeoutMs ?? Number.NaN;
    super(message ?? defaultMessage(scopeName, timeoutMs), 'cause' in options ? { cause: options.cause } : undefined);
    this.scopeName = scopeName;
    this.timeoutMs = timeoutMs;
    // `new.target`, not the class's own name: a class body that names itself is
    // renamed by bundlers (`_TimeoutError`), and errors must print as `TimeoutError`.
    Error.captureStackTrace(this, new.target);
  }
}

function defaultMessage(scopeName: string, timeoutMs: number): string {
  return Number.isFinite(timeoutMs)
    ? `Scope "${scopeName}" timed out after ${String(timeoutMs)} ms`
    : `Scope "${scopeName}" timed out`;
}

/** Reads `value[key]` for a guard: `undefined` when it is no object, or when reading throws (a getter, a Proxy). */
function read(value: unknown, key: string): unknown {
  if (typeof value !== 'object' || value === null) return undefined;
  try {
    return (value as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

function followCauses(value: unknown, test: (candidate: unknown) => boolean): boolean {
  let current = value;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH; depth++) {
    if (test(current)) return true;
    const next = read(current, 'cause');
    if (next === undefined || next === current) return false;
    current = next;
  }
  return false;
}

/**
 * Tells whether `error` is a timeout: loopsafe's {@link TimeoutError}, a
 * `DOMException` named `TimeoutError` (as `AbortSignal.timeout()` produces), or
 * a peer's `TimeoutError` (p-timeout, and any error named `TimeoutError`) —
 * itself or anywhere along its `.cause` chain.
 *
 * @param error - Any thrown value.
 * @returns `true` when it is, or wraps, a timeout.
 * @category Errors
 * @example
 * ```ts
 * import { isTimeoutError, safeWaitFor } from 'loopsafe';
 *
 * try {
 *   await safeWaitFor(new Promise(() => {}), 10);
 * } catch (error) {
 *   console.log(isTimeoutError(error)); // true
 * }
 * console.log(isTimeoutError(new Error('request failed', { cause: new DOMException('late', 'TimeoutError') }))); // true
 * ```
 */
export function isTimeoutError(error: unknown): error is Error {
  return followCauses(error, (candidate) => read(candidate, 'name') === 'TimeoutError');
}

/**
 * Tells whether `error` is an abort: a `DOMException` named `AbortError`,
 * Node's `AbortError` (`code: 'ABORT_ERR'`), or a peer's `AbortError`
 * (abort-controller-x, p-retry, undici…) — itself or anywhere along its
 * `.cause` chain. A {@link TimeoutError} is not an abort error.
 *
 * @param error - Any thrown value.
 * @returns `true` when it is, or wraps, an abort.
 * @category Errors
 * @example
 * ```ts
 * import { isAbortError, safeSleep } from 'loopsafe';
 *
 * const controller = new AbortController();
 * const sleeping = safeSleep(1_000, { signal: controller.signal });
 * controller.abort(); // no reason: the platform supplies an AbortError
 * await sleeping.catch((error: unknown) => console.log(isAbortError(error))); // true
 * ```
 */
export function isAbortError(error: unknown): error is Error {
  return followCauses(
    error,
    (candidate) => read(candidate, 'name') === 'AbortError' || read(candidate, 'code') === 'ABORT_ERR',
  );
}

/**
 * A fail-fast gather failed. `errors` are the real failures, in the order they
 * happened — never the cancellations the gather itself caused in the sibling
 * tasks; `cause` is the first of them.
 *
 * @category Errors
 * @example
 * ```ts
 * import { GatherError } from 'loopsafe';
 *
 * const error = new GatherError([new Error('db down')]);
 * console.log(error.name, error.errors.length, (error.cause as Error).message); // 'GatherError' 1 'db down'
 * ```
 */
export class GatherError extends AggregateError {
  /** Always `'GatherError'`. */
  override readonly name = 'GatherError' as const;

  /**
   * @param errors - The real failures, in the order they happened (at least one).
   * @param message - Human-readable description. Defaults to one naming the first failure.
   * @throws `TypeError`/`RangeError` for `errors` that is not a non-empty array, or a `message` that is not a string.
   */
  constructor(errors: readonly unknown[], message?: string) {
    if (!Array.isArray(errors))
      throw new TypeError(`Expected \`errors\` to be an array of failures, got ${describe(errors)}`);
    if (errors.length === 0) throw new RangeError('Expected `errors` to hold at least one failure, got an empty array');
    assertOptionalString('message', message);
    const first: unknown = errors[0];
    // Whatever a task failed with (an object String() cannot convert, a throwing getter), this never throws.
    super(errors, message ?? `${String(errors.length)} task(s) failed; first: ${describeThrown(first)}`, {
      cause: first,
    });
  }
}

const BROKEN_CIRCUIT_OPTIONS = /* @__PURE__ */ new Set(['breakerName', 'retryAfterMs', 'cause']);
const RATE_LIMIT_OPTIONS = /* @__PURE__ */ new Set(['limiterName', 'retryAfterMs', 'cause']);

/**
 * Options for {@link BrokenCircuitError}.
 *
 * @category Errors
 */
export interface BrokenCircuitErrorOptions {
  /** The name of the breaker that turned the call away. */
  breakerName?: string | undefined;
  /** Milliseconds until the breaker lets a trial call through (`0` while a trial is under way). */
  retryAfterMs?: number | undefined;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * A {@link CircuitBreaker} turned a call away without running it: it is open
 * (the dependency failed too often), or half-open with every trial slot taken.
 *
 * @category Errors
 * @example
 * ```ts
 * import { BrokenCircuitError, isBrokenCircuitError } from 'loopsafe';
 *
 * const error = new BrokenCircuitError(undefined, { breakerName: 'billing', retryAfterMs: 2_500 });
 * console.log(error.name, error.breakerName, error.retryAfterMs, isBrokenCircuitError(error)); // 'BrokenCircuitError' 'billing' 2500 true
 * ```
 */
export class BrokenCircuitError extends Error {
  /** Always `'BrokenCircuitError'`, the name {@link isBrokenCircuitError} recognises. */
  override readonly name = 'BrokenCircuitError' as const;
  /** The name of the breaker that turned the call away. */
  readonly breakerName: string;
  /** Milliseconds until the breaker lets a trial call through; `0` while a half-open trial is under way. */
  readonly retryAfterMs: number;
  /** For cockatiel's `isBrokenCircuitError(error)`, which reads this flag. */
  readonly isBrokenCircuitError = true as const;

  /**
   * @param message - Human-readable description. Defaults to one built from `breakerName` and `retryAfterMs`.
   * @param options - `breakerName`, `retryAfterMs` and `cause`.
   * @throws `TypeError`/`RangeError` for a `message` that is not a string, or a bad option.
   */
  constructor(message?: string, options: BrokenCircuitErrorOptions = {}) {
    assertOptionalString('message', message);
    assertOptions('BrokenCircuitError', options, BROKEN_CIRCUIT_OPTIONS);
    assertOptionalString('breakerName', options.breakerName);
    if (options.retryAfterMs !== undefined) assertDuration('retryAfterMs', options.retryAfterMs);
    const breakerName = options.breakerName ?? 'anonymous';
    const retryAfterMs = options.retryAfterMs ?? 0;
    super(
      message ??
        (Number.isFinite(retryAfterMs)
          ? `Circuit "${breakerName}" is open; retry in ${String(Math.ceil(retryAfterMs))} ms`
          : `Circuit "${breakerName}" is open until it is reset`),
      'cause' in options ? { cause: options.cause } : undefined,
    );
    this.breakerName = breakerName;
    this.retryAfterMs = retryAfterMs;
    Error.captureStackTrace(this, new.target);
  }
}

/**
 * Tells whether `error` is a broken circuit: loopsafe's
 * {@link BrokenCircuitError}, or cockatiel's (`isBrokenCircuitError: true`),
 * or any error named `BrokenCircuitError` — itself or anywhere along its
 * `.cause` chain.
 *
 * @param error - Any thrown value.
 * @returns `true` when it is, or wraps, a broken circuit.
 * @category Errors
 * @example
 * ```ts
 * import { isBrokenCircuitError } from 'loopsafe';
 *
 * // cockatiel's BrokenCircuitError carries this flag:
 * console.log(isBrokenCircuitError(Object.assign(new Error('open'), { isBrokenCircuitError: true }))); // true
 * console.log(isBrokenCircuitError(new Error('boom'))); // false
 * ```
 */
export function isBrokenCircuitError(error: unknown): error is Error {
  return followCauses(
    error,
    (candidate) => read(candidate, 'name') === 'BrokenCircuitError' || read(candidate, 'isBrokenCircuitError') === true,
  );
}

/**
 * Options for {@link RateLimitError}.
 *
 * @category Errors
 */
export interface RateLimitErrorOptions {
  /** The name of the limiter that turned the call away. */
  limiterName?: string | undefined;
  /** Milliseconds until the tokens asked for would be available. */
  retryAfterMs?: number | undefined;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * A {@link RateLimiter} (or {@link KeyedRateLimiter}) turned an `acquire`
 * away at once: waiting for its tokens would pass the deadline (the ambient
 * scope's, or the call's own `timeout`).
 *
 * @category Errors
 * @example
 * ```ts
 * import { isRateLimitError, RateLimitError } from 'loopsafe';
 *
 * const error = new RateLimitError(undefined, { limiterName: 'search', retryAfterMs: 120 });
 * console.log(error.name, error.limiterName, error.retryAfterMs, isRateLimitError(error)); // 'RateLimitError' 'search' 120 true
 * ```
 */
export class RateLimitError extends Error {
  /** Always `'RateLimitError'`, the name {@link isRateLimitError} recognises. */
  override readonly name = 'RateLimitError' as const;
  /** The name of the limiter that turned the call away. */
  readonly limiterName: string;
  /** Milliseconds until the tokens asked for would be available (for a `Retry-After`). */
  readonly retryAfterMs: number;

  /**
   * @param message - Human-readable description. Defaults to one built from `limiterName` and `retryAfterMs`.
   * @param options - `limiterName`, `retryAfterMs` and `cause`.
   * @throws `TypeError`/`RangeError` for a `message` that is not a string, or a bad option.
   */
  constructor(message?: string, options: RateLimitErrorOptions = {}) {
    assertOptionalString('message', message);
    assertOptions('RateLimitError', options, RATE_LIMIT_OPTIONS);
    assertOptionalString('limiterName', options.limiterName);
    if (options.retryAfterMs !== undefined) assertDuration('retryAfterMs', options.retryAfterMs);
    const limiterName = options.limiterName ?? 'anonymous';
    const retryAfterMs = options.retryAfterMs ?? 0;
    super(
      message ?? `Rate limit "${limiterName}" exceeded; tokens available in ${String(Math.ceil(retryAfterMs))} ms`,
      'cause' in options ? { cause: options.cause } : undefined,
    );
    this.limiterName = limiterName;
    this.retryAfterMs = retryAfterMs;
    Error.captureStackTrace(this, new.target);
  }
}

/**
 * Tells whether `error` is a rate-limit rejection: loopsafe's
 * {@link RateLimitError}, or any error named `RateLimitError` — itself or
 * anywhere along its `.cause` chain.
 *
 * @param error - Any thrown value.
 * @returns `true` when it is, or wraps, a rate-limit rejection.
 * @category Errors
 * @example
 * ```ts
 * import { isRateLimitError, RateLimitError } from 'loopsafe';
 *
 * console.log(isRateLimitError(new Error('wrapped', { cause: new RateLimitError() }))); // true
 * ```
 */
export function isRateLimitError(error: unknown): error is Error {
  return followCauses(error, (candidate) => read(candidate, 'name') === 'RateLimitError');
}

/**
 * A bulkhead turned a caller away: a {@link Semaphore} created with
 * `maxQueue` had no free permit and `maxQueue` callers already waiting, so
 * `acquire()` (and `run()`) rejected at once instead of queueing. The work
 * was not started; retrying later, or answering 503, is the caller's choice.
 *
 * @category Errors
 * @example
 * ```ts
 * import { Semaphore, isQueueFullError } from 'loopsafe';
 *
 * const pool = new Semaphore(1, { name: 'db', maxQueue: 0 });
 * using permit = pool.tryAcquire();
 * const error = await pool.acquire().catch((e: unknown) => e);
 * console.log(isQueueFullError(error), (error as Error).message); // true 'Semaphore "db" is full: no permit is free and 0 caller(s) already wait (maxQueue)'
 * console.log(permit !== undefined); // true
 * ```
 */
export class QueueFullError extends Error {
  /** Always `'QueueFullError'`. */
  override readonly name = 'QueueFullError' as const;
  /** The name of the semaphore that was full (`'Semaphore'` when it was given none). */
  readonly semaphoreName: string;
  /** The semaphore's `maxQueue`: how many callers may wait for a permit. */
  readonly maxQueue: number;

  /**
   * @param semaphoreName - The full semaphore's name.
   * @param maxQueue - Its `maxQueue`.
   * @param message - Human-readable description. Defaults to one naming the semaphore and its queue.
   * @throws `TypeError`/`RangeError` for a `semaphoreName` or `message` that is not a string, or a bad `maxQueue`.
   */
  constructor(semaphoreName: string, maxQueue: number, message?: string) {
    if (typeof semaphoreName !== 'string')
      throw new TypeError(`Expected \`semaphoreName\` to be a string, got ${describe(semaphoreName)}`);
    assertQueueLimit('maxQueue', maxQueue);
    assertOptionalString('message', message);
    super(
      message ??
        `Semaphore "${semaphoreName}" is full: no permit is free and ${String(maxQueue)} caller(s) already wait (maxQueue)`,
    );
    this.semaphoreName = semaphoreName;
    this.maxQueue = maxQueue;
    Error.captureStackTrace(this, new.target);
  }
}

/**
 * Tells whether `error` is a {@link QueueFullError} — of this copy of loopsafe
 * or another (it reads the `name`, not `instanceof` alone) — itself or
 * anywhere along its `.cause` chain.
 *
 * @param error - Any thrown value.
 * @returns `true` when it is, or wraps, a full bulkhead's rejection.
 * @category Errors
 * @example
 * ```ts
 * import { isQueueFullError, QueueFullError } from 'loopsafe';
 *
 * console.log(isQueueFullError(new QueueFullError('db', 10))); // true
 * console.log(isQueueFullError(new Error('other'))); // false
 * ```
 */
export function isQueueFullError(error: unknown): error is QueueFullError {
  return followCauses(error, (candidate) => read(candidate, 'name') === 'QueueFullError');
}
