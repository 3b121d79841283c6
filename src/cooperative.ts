/**
 * `cooperativeForEach`: process many items in time slices, yielding the event
 * loop between slices and checking the deadline between items, so one
 * CPU-heavy loop cannot starve every other request.
 *
 * @module
 */
import type { Clock } from './clock.js';
import { ambientScope, clockFor, waitBounded } from './internal/engine/index.js';
import {
  assertClock,
  assertDuration,
  assertFunction,
  assertOptions,
  assertSignal,
  describe,
  isPromiseLike,
} from './internal/validate.js';
import { yieldToEventLoop } from './event-loop.js';

/**
 * Options for {@link cooperativeForEach}.
 *
 * @category Event loop
 */
export interface CooperativeOptions {
  /**
   * The time slice, in milliseconds: once items have run this long without a
   * break, the loop yields a full event-loop turn before the next item.
   * `0` yields before every item.
   * @defaultValue `10`
   */
  budgetMs?: number | undefined;
  /** Stops the loop between items; it rejects with the signal's reason (`===`). */
  signal?: AbortSignal | undefined;
  /** The clock the slice is measured on. @defaultValue the ambient scope's clock, else {@link systemClock} */
  clock?: Clock | undefined;
}

const COOPERATIVE_OPTIONS = new Set(['budgetMs', 'signal', 'clock']);

/**
 * Calls `fn(item, index)` for each item of `items` (sync or async iterable),
 * in order, one at a time — cooperatively:
 *
 * - Before each item it checks `signal` and the ambient scope, reading the
 *   clock, so the deadline stops CPU-bound work on time even though no timer
 *   could fire while it ran; it rejects with the signal's reason (`===`) or the
 *   scope's {@link TimeoutError}, and the iterator is closed.
 * - When the items processed since the last break have taken `budgetMs`, it
 *   yields a full event-loop turn ({@link yieldToEventLoop}): expired timers,
 *   I/O and other requests run, then it goes on.
 * - A `fn` that returns a promise is awaited before the next item.
 *
 * @param items - The items: an array, any iterable, or an async iterable.
 * @param fn - Called with each item and its index; may be sync or async.
 * @param options - `budgetMs`, `signal`, `clock`.
 * @returns A promise that fulfils with the number of items processed.
 * @throws `fn`'s error; the signal's reason or the ambient scope's {@link TimeoutError} (rejections).
 * @throws `TypeError`/`RangeError` (synchronously) for bad `items`, `fn` or option.
 * @category Event loop
 * @example
 * ```ts
 * import { cooperativeForEach, withTimeout } from 'loopsafe';
 *
 * const rows = Array.from({ length: 10_000 }, (_, i) => i);
 * let sum = 0;
 * const count = await withTimeout(1_000, () =>
 *   cooperativeForEach(rows, (row) => { sum += row; }, { budgetMs: 5 }),
 * );
 * console.log(count, sum); // 10000 49995000
 * ```
 */
export function cooperativeForEach<T>(
  items: Iterable<T> | AsyncIterable<T>,
  fn: (item: T, index: number) => unknown,
  options?: CooperativeOptions,
): Promise<number> {
  const isAsync = typeof (items as Partial<AsyncIterable<T>> | null)?.[Symbol.asyncIterator] === 'function';
  if (!isAsync && typeof (items as Partial<Iterable<T>> | null)?.[Symbol.iterator] !== 'function') {
    throw new TypeError(`Expected \`items\` to be an iterable or async iterable, got ${describe(items)}`);
  }
  assertFunction('fn', fn);
  assertOptions('cooperativeForEach', options, COOPERATIVE_OPTIONS);
  const budgetMs = options?.budgetMs === undefined ? 10 : options.budgetMs;
  assertDuration('budgetMs', budgetMs);
  const signal = options?.signal;
  assertSignal('signal', signal);
  assertClock('clock', options?.clock);
  const scope = ambientScope();
  const clock = clockFor(options?.clock, scope);

  const check = (): void => {
    if (signal?.aborted === true) throw signal.reason;
    scope?.check();
  };
  /** Awaits an item's promise (or the next item), but never past an abort or the deadline. */
  const bounded = <V>(work: PromiseLike<V>): Promise<V> => waitBounded(Promise.resolve(work), scope, signal);

  const run = async (): Promise<number> => {
    let index = 0;
    let sliceStart = clock.now();
    check();
    // Written out twice so the sync path awaits only when it yields or `fn` returns a promise.
    if (isAsync) {
      const iterator = (items as AsyncIterable<T>)[Symbol.asyncIterator]();
      let finished = false;
      try {
        for (;;) {
          const step = await bounded(iterator.next());
          if (step.done === true) {
            finished = true;
            break;
          }
          if (clock.now() - sliceStart >= budgetMs) {
            await yieldToEventLoop();
            sliceStart = clock.now();
          }
          check();
          const result = fn(step.value, index++);
          if (isPromiseLike(result)) await bounded(result);
        }
      } finally {
        // Closing the input is bounded too: a `return()` that hangs cannot hold the loop.
        if (!finished && typeof iterator.return === 'function') {
          await bounded(iterator.return()).catch(() => undefined);
        }
      }
    } else {
      for (const item of items as Iterable<T>) {
        if (clock.now() - sliceStart >= budgetMs) {
          await yieldToEventLoop();
          sliceStart = clock.now();
        }
        check();
        const result = fn(item, index++);
        if (isPromiseLike(result)) await bounded(result);
      }
    }
    return index;
  };
  return run();
}
