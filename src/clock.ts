/**
 * The one source of time for every loopsafe primitive: a monotonic `now()`
 * plus timers. Inject another clock (for instance `createManualClock()` from
 * `loopsafe/testing`) through the `clock` option; a scope's clock is inherited
 * by everything that runs inside it.
 *
 * @module
 */

/**
 * A monotonic clock with timers.
 *
 * `now()` must never go backwards. `setTimeout` may behave like Node's (delays
 * above 2^31−1 ms fire after 1 ms): loopsafe never hands a clock a delay longer
 * than {@link MAX_TIMER_DELAY_MS}, and takes a timer that fires as its time
 * having come (even if `now()` reads a little earlier, or has not moved), so
 * any clock with this shape works — including `@sinonjs/fake-timers` clocks.
 *
 * @category Clock
 * @example
 * ```ts
 * import { safeSleep, type Clock } from 'loopsafe';
 *
 * // A clock is three functions; this one simply delegates to the platform.
 * const clock: Clock = {
 *   now: () => performance.now(),
 *   setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
 *   clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
 * };
 * await safeSleep(5, { clock });
 * ```
 */
export interface Clock {
  /** Monotonic time in milliseconds. */
  now(): number;
  /** Calls `callback` once, after `delayMs` milliseconds. Returns a handle for `clearTimeout`. */
  setTimeout(callback: () => void, delayMs: number): unknown;
  /** Cancels a timer created by this clock's `setTimeout`. Unknown or spent handles are ignored. */
  clearTimeout(handle: unknown): void;
}

/**
 * The longest delay a Node.js timer can hold (2^31−1 ms, about 24.8 days).
 * Longer waits are split into chunks of at most this length.
 *
 * @category Clock
 */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/**
 * The real clock: `performance.now()` and the platform's timers, looked up when
 * they are called (so test tools that install fake timers keep working).
 *
 * @category Clock
 * @example
 * ```ts
 * import { systemClock } from 'loopsafe';
 *
 * const started = systemClock.now();
 * console.log(systemClock.now() - started >= 0); // true: monotonic
 * ```
 */
export const systemClock: Clock = /* @__PURE__ */ Object.freeze({
  now: () => performance.now(),
  setTimeout: (callback: () => void, delayMs: number): unknown => setTimeout(callback, delayMs),
  clearTimeout: (handle: unknown): void => {
    clearTimeout(handle as NodeJS.Timeout);
  },
});
