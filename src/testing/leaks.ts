/**
 * Assertions that an operation left nothing behind: no abort listeners on a
 * long-lived signal, no pending timers, no open scopes.
 *
 * @module
 */
import { getEventListeners } from 'node:events';
import { assertClock, assertOptions, describe } from '../internal/validate.js';
import type { ManualClock } from './manual-clock.js';

const LEAK_CHECK_KEYS = /* @__PURE__ */ new Set(['signals', 'clock', 'timersBefore']);

function isAbortSignal(value: unknown): value is AbortSignal {
  return typeof AbortSignal === 'function' && value instanceof AbortSignal;
}

/**
 * Counts the `abort` listeners currently attached to `signal`.
 *
 * @param signal - Any `AbortSignal`.
 * @returns The number of listeners.
 * @category Testing
 * @example
 * ```ts
 * import { safeSleep } from 'loopsafe';
 * import { abortListenerCount } from 'loopsafe/testing';
 *
 * const controller = new AbortController();
 * await safeSleep(1, { signal: controller.signal });
 * console.log(abortListenerCount(controller.signal)); // 0
 * ```
 */
export function abortListenerCount(signal: AbortSignal): number {
  if (!isAbortSignal(signal)) throw new TypeError(`Expected \`signal\` to be an AbortSignal, got ${describe(signal)}`);
  return getEventListeners(signal, 'abort').length;
}

/**
 * Counts the active (not yet fired, not cleared) timers of the process, as
 * Node reports them.
 *
 * @returns The number of `Timeout` resources.
 * @category Testing
 * @example
 * ```ts
 * import { safeWaitFor } from 'loopsafe';
 * import { activeTimerCount } from 'loopsafe/testing';
 *
 * const before = activeTimerCount();
 * await safeWaitFor(Promise.resolve(1), 60_000);
 * console.log(activeTimerCount() - before); // 0
 * ```
 */
export function activeTimerCount(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
}

/**
 * What {@link assertNoLeaks} should inspect.
 *
 * @category Testing
 */
export interface LeakCheck {
  /** Long-lived signals that must have no `abort` listeners left. */
  signals?: readonly AbortSignal[] | undefined;
  /** A manual clock that must have no pending timers. */
  clock?: ManualClock | undefined;
  /** The process's active timer count taken before the work (see {@link activeTimerCount}); it must not have grown. */
  timersBefore?: number | undefined;
}

/**
 * Throws an `Error` listing whatever was left behind: abort listeners on the
 * given signals, pending timers on the manual clock, or process timers beyond
 * `timersBefore`.
 *
 * @param check - What to inspect.
 * @throws `Error` describing each leak found.
 * @category Testing
 * @example
 * ```ts
 * import { safeSleep } from 'loopsafe';
 * import { assertNoLeaks, createManualClock } from 'loopsafe/testing';
 *
 * const clock = createManualClock();
 * const controller = new AbortController();
 * const sleeping = safeSleep(100, { clock, signal: controller.signal });
 * await clock.advance(100);
 * await sleeping;
 * assertNoLeaks({ clock, signals: [controller.signal] }); // passes
 * ```
 */
export function assertNoLeaks(check: LeakCheck): void {
  const given: unknown = check; // callers without types can pass anything
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new TypeError(
      `Expected \`check\` (the options of assertNoLeaks()) to be an object of what to inspect, got ${describe(check)}`,
    );
  }
  assertOptions('assertNoLeaks', check, LEAK_CHECK_KEYS);
  const { signals, clock, timersBefore } = check;
  if (signals !== undefined) {
    if (!Array.isArray(signals)) {
      throw new TypeError(`Expected \`signals\` to be an array of AbortSignals, got ${describe(signals)}`);
    }
    signals.forEach((signal: unknown, index) => {
      if (!isAbortSignal(signal)) {
        throw new TypeError(
          `Expected \`signals\` to be an array of AbortSignals, got an array whose entry ${String(index)} is ${describe(signal)}`,
        );
      }
    });
  }
  if (clock !== undefined) {
    assertClock('clock', clock);
    if (typeof (clock as Partial<ManualClock>).pendingTimers !== 'number') {
      throw new TypeError(`Expected \`clock\` to be a manual clock (with pendingTimers), got ${describe(clock)}`);
    }
  }
  if (timersBefore !== undefined && !(Number.isInteger(timersBefore) && timersBefore >= 0)) {
    const Kind = typeof timersBefore === 'number' ? RangeError : TypeError;
    throw new Kind(`Expected \`timersBefore\` to be a count of timers (an integer ≥ 0), got ${describe(timersBefore)}`);
  }
  const problems: string[] = [];
  check.signals?.forEach((signal, index) => {
    const count = abortListenerCount(signal);
    if (count > 0) problems.push(`signals[${String(index)}] still has ${String(count)} abort listener(s)`);
  });
  if (check.clock !== undefined && check.clock.pendingTimers > 0) {
    problems.push(`the manual clock still has ${String(check.clock.pendingTimers)} pending timer(s)`);
  }
  if (check.timersBefore !== undefined) {
    const now = activeTimerCount();
    if (now > check.timersBefore) problems.push(`${String(now - check.timersBefore)} process timer(s) left active`);
  }
  if (problems.length > 0) throw new Error(`Leaks found: ${problems.join('; ')}`);
}
