/**
 * `safeSleep`: an abortable, deadline-aware sleep that is exact for any length.
 *
 * @module
 */
import { systemClock, type Clock } from './clock.js';
import { rethrowAtCaller } from './errors.js';
import { CancelNode, linkNode } from './internal/cancel-node.js';
import { ambient } from './internal/scope-node.js';
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
   * Let the process exit while sleeping (the timer is `unref`'d).
   * @defaultValue `false`
   */
  unref?: boolean | undefined;
}

const SLEEP_OPTIONS = new Set(['signal', 'clock', 'unref']);

class Sleeper extends CancelNode {
  readonly #resolve: () => void;
  readonly #reject: (reason: unknown) => void;

  constructor(clock: Clock, resolve: () => void, reject: (reason: unknown) => void) {
    super(clock);
    this.#resolve = resolve;
    this.#reject = reject;
  }

  _onDeadline(): void {
    this._detach();
    this.#resolve();
  }

  _onCancel(reason: unknown): void {
    this.#reject(reason);
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
 *   `Infinity` sleeps until aborted. A timer that fires early is re-armed, so
 *   the sleep never ends earlier than Node's 1 ms timer resolution allows.
 * - `safeSleep(0)` waits for a full timer turn, so timers that expired while
 *   the event loop was blocked run first.
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
  const signal = options?.signal;
  const unref = options?.unref;
  if (options !== undefined) {
    assertSignal('signal', signal);
    assertClock('clock', options.clock);
    assertOptionalBoolean('unref', unref);
  }
  const parent = ambient.getStore();
  const clock = options?.clock ?? parent?._clock ?? systemClock;
  return new Promise<void>((resolve, reject) => {
    const sleeper = new Sleeper(clock, resolve, reject);
    sleeper._timerAt = clock.now() + ms;
    sleeper._unref = unref === true;
    const born = linkNode(sleeper, parent, signal);
    if (born !== undefined) reject(born.reason);
  }).then(undefined, rethrowAtCaller);
}
