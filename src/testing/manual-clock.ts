/**
 * A virtual clock for tests: monotonic time that moves only when told to, and
 * timers that fire in order as it moves.
 *
 * @module
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { setImmediate as realSetImmediate } from 'node:timers';
import type { Clock } from '../clock.js';
import { MAX_TIMER_DELAY_MS } from '../clock.js';
import { IndexedHeap } from '../internal/heap.js';
import { assertDuration, assertOptions, describe } from '../internal/validate.js';

/**
 * A {@link Clock} whose time moves only through `advance()` and `runAll()`.
 *
 * Timers mirror Node's: a delay outside [1, 2^31−1] ms (0, NaN, negative, or
 * an overflowing one) fires after 1 ms, so a bug that real timers would show
 * shows here too. A timer's callback runs in the async context it was created
 * in, like a real timer's.
 *
 * @category Testing
 */
export interface ManualClock extends Clock {
  /** Virtual milliseconds since the clock was created (plus `start`). */
  now(): number;
  /**
   * Moves time forward by `ms`, firing every timer due by then in order, and
   * letting promise chains settle after each (a full macrotask turn). Timers
   * created while advancing fire too if they fall due before the target.
   *
   * @throws `RangeError` for a negative or NaN `ms`, or when timers keep creating timers without end.
   */
  advance(ms: number): Promise<void>;
  /** Advances to the last pending timer, repeatedly, until none is left. */
  runAll(): Promise<void>;
  /** Lets pending promise chains settle without moving time. */
  flush(): Promise<void>;
  /** Number of timers scheduled and not yet fired or cleared. */
  readonly pendingTimers: number;
  /** Time at which the next timer is due, or `undefined` when none is pending. */
  nextTimerAt(): number | undefined;
}

/**
 * Options for {@link createManualClock}.
 *
 * @category Testing
 */
export interface ManualClockOptions {
  /**
   * The clock's initial `now()`.
   * @defaultValue `0`
   */
  start?: number | undefined;
  /**
   * The most timers one `advance()`/`runAll()` may fire before it concludes the
   * code under test schedules timers forever, and throws.
   * @defaultValue `100_000`
   */
  maxTimers?: number | undefined;
}

interface VirtualTimer {
  readonly id: number;
  readonly at: number;
  readonly callback: () => void;
  /** Its position in the heap; -1 once fired or cleared. */
  index: number;
}

/** A handle returned by the manual clock's `setTimeout` (it also answers `unref`/`ref`, as Node's does). */
class ManualTimerHandle {
  constructor(readonly id: number) {}
  unref(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  hasRef(): boolean {
    return true;
  }
}

function flushOnce(): Promise<void> {
  return new Promise((resolve) => realSetImmediate(resolve));
}

/**
 * Creates a {@link ManualClock}: virtual monotonic time and timers, for
 * deterministic tests of anything that takes a `clock` option.
 *
 * @param options - `start`, `maxTimers`.
 * @returns A fresh clock at `start`, with no timers.
 * @throws `TypeError`/`RangeError` for bad options.
 * @category Testing
 * @example
 * ```ts
 * import { safeSleep } from 'loopsafe';
 * import { createManualClock } from 'loopsafe/testing';
 *
 * const clock = createManualClock();
 * let woke = false;
 * const sleeping = safeSleep(1_000, { clock }).then(() => { woke = true; });
 * await clock.advance(999);
 * console.log(woke); // false
 * await clock.advance(1);
 * await sleeping;
 * console.log(woke, clock.now()); // true 1000
 * ```
 */
export function createManualClock(options?: ManualClockOptions): ManualClock {
  assertOptions('createManualClock', options, new Set(['start', 'maxTimers']));
  const start = options?.start === undefined ? 0 : options.start;
  if (typeof start !== 'number' || !Number.isFinite(start)) {
    throw new TypeError(`Expected \`start\` to be a finite number, got ${describe(start)}`);
  }
  const maxTimers = options?.maxTimers === undefined ? 100_000 : options.maxTimers;
  if (!Number.isInteger(maxTimers) || maxTimers < 1) {
    throw new RangeError(`Expected \`maxTimers\` to be a positive integer, got ${describe(maxTimers)}`);
  }

  let now = start;
  let nextId = 1;
  const timers = new Map<number, VirtualTimer>();
  // Ordered by (at, id). A cleared timer leaves it at once (each timer knows
  // its index), so 100,000 cleared timers hold no memory.
  const heap = new IndexedHeap<VirtualTimer>((a, b) => a.at < b.at || (a.at === b.at && a.id < b.id));
  const push = (timer: VirtualTimer): void => {
    heap.push(timer);
  };
  const remove = (timer: VirtualTimer): void => {
    heap.remove(timer);
    timers.delete(timer.id);
  };
  const peek = (): VirtualTimer | undefined => heap.peek();

  /** Timers fired by the current advance()/runAll(), checked against `maxTimers`. */
  let fired = 0;
  const runDue = async (target: number): Promise<void> => {
    for (;;) {
      await flushOnce();
      const next = peek();
      if (next === undefined || next.at > target) break;
      if (++fired > maxTimers) {
        throw new RangeError(
          `The manual clock fired ${String(maxTimers)} timers in one advance: the code under test keeps scheduling timers`,
        );
      }
      remove(next);
      if (next.at > now) now = next.at;
      next.callback();
    }
    if (target > now) now = target;
    await flushOnce();
  };

  return {
    now: () => now,
    setTimeout(callback: () => void, delayMs: number): unknown {
      if (typeof callback !== 'function') {
        throw new TypeError(`Expected \`callback\` to be a function, got ${describe(callback)}`);
      }
      const delay = delayMs >= 1 && delayMs <= MAX_TIMER_DELAY_MS ? delayMs : 1;
      const timer: VirtualTimer = {
        id: nextId++,
        at: now + delay,
        callback: AsyncLocalStorage.bind(callback),
        index: -1,
      };
      timers.set(timer.id, timer);
      push(timer);
      return new ManualTimerHandle(timer.id);
    },
    clearTimeout(handle: unknown): void {
      if (!(handle instanceof ManualTimerHandle)) return;
      const timer = timers.get(handle.id);
      if (timer !== undefined) remove(timer);
    },
    advance(ms: number): Promise<void> {
      assertDuration('ms', ms);
      if (ms === Number.POSITIVE_INFINITY)
        throw new RangeError('Expected `ms` to be finite, got Infinity; use runAll()');
      fired = 0;
      return runDue(now + ms);
    },
    async runAll(): Promise<void> {
      fired = 0;
      let next = peek();
      while (next !== undefined) {
        await runDue(next.at);
        next = peek();
      }
    },
    flush: flushOnce,
    get pendingTimers(): number {
      return timers.size;
    },
    nextTimerAt(): number | undefined {
      return peek()?.at;
    },
  };
}
