/**
 * `safeSleep`: an abortable, deadline-aware sleep that is exact for any length.
 *
 * @module
 */
import type { Clock } from './clock.js';
import { ambientScope, clockFor, LeafWait } from './internal/engine/index.js';
import {
  assertClock,
  assertDuration,
  assertOptionalBoolean,
  assertOptions,
  assertSignal,
} from './internal/validate.js';

/**
 * Options for {@link safeSleep}.
 *
 * @category Primitives
 */
export interface SleepOptions {
  /** Aborts the sleep; it rejects with the signal's reason (`===`). */
  signal?: AbortSignal | undefined;
  /** @defaultValue the ambient scope's clock, else {@link systemClock} */
  clock?: Clock | undefined;
  /**
   * Let the process exit while sleeping: the sleep does not keep it alive —
   * inside a scope too, once the scope's own function has finished.
   * @defaultValue `false`
   */
  unref?: boolean | undefined;
}

const SLEEP_OPTIONS = new Set(['signal', 'clock', 'unref']);

/** A sleep: its own deadline is the end of the sleep, not a timeout. */
class Sleep extends LeafWait<undefined> {
  protected onDeadline(): void {
    this.fulfil(undefined);
  }
}

/**
 * Sleeps for `ms` milliseconds — abortable, bounded by the ambient deadline,
 * and exact for any length.
 *
 * - If `signal` aborts, rejects with its reason (`===`).
 * - Inside a scope whose deadline comes first, stops at that deadline and
 *   rejects with the scope's {@link TimeoutError} instead of sleeping past it.
 * - Delays above 2^31−1 ms are chunked (Node would fire them after 1 ms);
 *   `Infinity` sleeps until aborted.
 * - `safeSleep(0)` waits for a full timer turn, so timers that expired while
 *   the event loop was blocked run first.
 * - The sleep ends when its timer fires, even if the clock's `now()` reads a
 *   little earlier: Node timers may fire up to 1 ms early, and fake-timer tools
 *   (`node:test`'s `mock.timers`, `@sinonjs/fake-timers`, vitest's and jest's)
 *   fire timers without moving `performance.now()`.
 *
 * @param ms - Milliseconds to sleep: a non-negative number or `Infinity`.
 * @param options - `signal`, `clock`, `unref`.
 * @returns A promise that fulfils with `undefined` when the time has passed.
 * @throws `TypeError`/`RangeError` (synchronously) for a bad `ms` or option.
 * @throws the signal's reason, or the ambient scope's {@link TimeoutError} (rejection).
 * @category Primitives
 * @example
 * ```ts
 * import { safeSleep, withTimeout } from 'loopsafe';
 *
 * await safeSleep(10);
 *
 * const controller = new AbortController();
 * setTimeout(() => controller.abort(new Error('shutting down')), 5);
 * await safeSleep(60_000, { signal: controller.signal }).catch((e: Error) => console.log(e.message)); // 'shutting down'
 *
 * // Bounded by the ambient deadline: rejects with the scope's TimeoutError after ~20 ms.
 * await withTimeout(20, () => safeSleep(Infinity)).catch((e: Error) => console.log(e.name)); // 'TimeoutError'
 * ```
 */
export function safeSleep(ms: number, options?: SleepOptions): Promise<void> {
  assertDuration('ms', ms);
  assertOptions('safeSleep', options, SLEEP_OPTIONS);
  let signal: AbortSignal | undefined;
  let clock: Clock | undefined;
  let ref = true;
  if (options !== undefined) {
    signal = options.signal;
    clock = options.clock;
    assertSignal('signal', signal);
    assertClock('clock', clock);
    assertOptionalBoolean('unref', options.unref);
    ref = options.unref !== true;
  }
  const scope = ambientScope();
  const sleep = new Sleep(clockFor(clock, scope), scope, signal, ms, ref);
  sleep.begin();
  return sleep.promise;
}
