import { setImmediate as realSetImmediate } from 'node:timers';
import { describe, expect, it } from 'vitest';
import type { Clock } from '../src/clock.js';
import { cooperativeForEach } from '../src/cooperative.js';
import { TimeoutError } from '../src/errors.js';
import { withTimeout } from '../src/scope.js';

/** A clock whose time moves only when the test says so, synchronously (for CPU-bound work). */
function steppedClock(): Clock & { step(ms: number): void } {
  let now = 0;
  return {
    now: () => now,
    step: (ms) => {
      now += ms;
    },
    setTimeout: () => ({ unref: () => undefined }),
    clearTimeout: () => undefined,
  };
}

/** A generator that records whether it was closed. */
function* tracked<T>(items: readonly T[], state: { closed: boolean }): Generator<T> {
  try {
    yield* items;
  } finally {
    state.closed = true;
  }
}

describe('cooperativeForEach()', () => {
  it('calls fn for every item in order, with its index, and resolves with the count', async () => {
    const seen: [string, number][] = [];
    const count = await cooperativeForEach(['a', 'b', 'c'], (item, index) => {
      seen.push([item, index]);
    });
    expect(count).toBe(3);
    expect(seen).toEqual([
      ['a', 0],
      ['b', 1],
      ['c', 2],
    ]);
  });

  it('awaits an async fn before the next item', async () => {
    const log: string[] = [];
    await cooperativeForEach([1, 2], async (n) => {
      log.push(`start ${String(n)}`);
      await new Promise((resolve) => realSetImmediate(resolve));
      log.push(`end ${String(n)}`);
    });
    expect(log).toEqual(['start 1', 'end 1', 'start 2', 'end 2']);
  });

  it('accepts async iterables', async () => {
    async function* source(): AsyncGenerator<number> {
      await Promise.resolve();
      yield 1;
      yield 2;
    }
    const seen: number[] = [];
    expect(await cooperativeForEach(source(), (n) => seen.push(n))).toBe(2);
    expect(seen).toEqual([1, 2]);
  });

  it('yields a full event-loop turn each time the time slice is used up, and only then', async () => {
    const clock = steppedClock();
    const log: (number | string)[] = [];
    realSetImmediate(() => log.push('other work'));
    const done = cooperativeForEach(
      [0, 1, 2, 3, 4, 5],
      (n) => {
        log.push(n);
        clock.step(4); // each item costs 4 ms
      },
      { budgetMs: 10, clock },
    );
    log.push('returned');
    await done;
    // 0, 1, 2 take 12 ms ≥ 10: yield; 3, 4, 5 take 12 ms but the list ends.
    expect(log).toEqual([0, 1, 2, 'returned', 'other work', 3, 4, 5]);
  });

  it('runs synchronously within the budget: other work waits', async () => {
    const log: (number | string)[] = [];
    realSetImmediate(() => log.push('other work'));
    const done = cooperativeForEach([1, 2, 3], (n) => log.push(n), { budgetMs: 1_000 });
    log.push('returned');
    await done;
    expect(log.slice(0, 4)).toEqual([1, 2, 3, 'returned']);
  });

  it('checks the ambient deadline between items, by the clock, and closes the iterator', async () => {
    const clock = steppedClock();
    const state = { closed: false };
    const seen: number[] = [];
    const run = withTimeout(
      10,
      () =>
        cooperativeForEach(
          tracked([0, 1, 2, 3, 4], state),
          (n) => {
            seen.push(n);
            clock.step(4);
          },
          { budgetMs: Number.POSITIVE_INFINITY },
        ),
      { clock, name: 'batch' },
    );
    await expect(run).rejects.toBeInstanceOf(TimeoutError);
    await expect(run).rejects.toMatchObject({ scopeName: 'batch' });
    expect(seen).toEqual([0, 1, 2]); // at 12 ms the deadline (10) had passed: no timer could have fired
    expect(state.closed).toBe(true);
  });

  it('stops between items when the signal aborts, rejecting with its reason (===)', async () => {
    const controller = new AbortController();
    const reason = new Error('stop');
    const seen: number[] = [];
    const run = cooperativeForEach(
      [1, 2, 3],
      (n) => {
        seen.push(n);
        if (n === 2) controller.abort(reason);
      },
      { signal: controller.signal },
    );
    await expect(run).rejects.toBe(reason);
    expect(seen).toEqual([1, 2]);
    await expect(cooperativeForEach([1], () => undefined, { signal: controller.signal })).rejects.toBe(reason);
  });

  it("rejects with fn's error and closes the iterator", async () => {
    const state = { closed: false };
    const boom = new Error('boom');
    await expect(
      cooperativeForEach(tracked([1, 2, 3], state), (n) => {
        if (n === 2) throw boom;
      }),
    ).rejects.toBe(boom);
    expect(state.closed).toBe(true);
  });

  it.each([
    ['items', () => cooperativeForEach(5 as never, () => undefined), TypeError, /`items`.*5/],
    ['fn', () => cooperativeForEach([], 'x' as never), TypeError, /`fn`/],
    [
      'unknown option',
      () => cooperativeForEach([], () => undefined, { budget: 5 } as never),
      TypeError,
      /Unknown option `budget`/,
    ],
    ['budgetMs', () => cooperativeForEach([], () => undefined, { budgetMs: -1 }), RangeError, /`budgetMs`.*-1/],
    ['signal', () => cooperativeForEach([], () => undefined, { signal: 'x' as never }), TypeError, /`signal`/],
    ['clock', () => cooperativeForEach([], () => undefined, { clock: {} as never }), TypeError, /`clock`/],
  ])('throws synchronously for a bad %s', (_name, act, type, message) => {
    expect(act).toThrow(type);
    expect(act).toThrow(message);
  });
});
