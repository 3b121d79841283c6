import { AsyncLocalStorage } from 'node:async_hooks';
import { describe, expect, it } from 'vitest';
import { MAX_TIMER_DELAY_MS } from '../src/clock.js';
import { createManualClock } from '../src/testing.js';

describe('createManualClock()', () => {
  it('starts at `start` and moves only when advanced', async () => {
    const clock = createManualClock({ start: 500 });
    expect(clock.now()).toBe(500);
    await clock.flush();
    expect(clock.now()).toBe(500);
    await clock.advance(25);
    expect(clock.now()).toBe(525);
  });

  it('fires due timers in time order, then creation order, at their own time', async () => {
    const clock = createManualClock();
    const fired: [string, number][] = [];
    clock.setTimeout(() => fired.push(['b', clock.now()]), 20);
    clock.setTimeout(() => fired.push(['a', clock.now()]), 10);
    clock.setTimeout(() => fired.push(['c', clock.now()]), 20);
    clock.setTimeout(() => fired.push(['late', clock.now()]), 31);
    await clock.advance(30);
    expect(fired).toEqual([
      ['a', 10],
      ['b', 20],
      ['c', 20],
    ]);
    expect(clock.pendingTimers).toBe(1);
    expect(clock.nextTimerAt()).toBe(31);
  });

  it('lets promise chains settle between timers', async () => {
    const clock = createManualClock();
    const log: string[] = [];
    clock.setTimeout(() => {
      void Promise.resolve()
        .then(() => Promise.resolve())
        .then(() => {
          log.push('chain of the first timer');
          clock.setTimeout(() => log.push('timer scheduled by the chain'), 5);
        });
    }, 10);
    clock.setTimeout(() => log.push('second timer'), 12);
    await clock.advance(20);
    expect(log).toEqual(['chain of the first timer', 'second timer', 'timer scheduled by the chain']);
  });

  it('clearTimeout removes a timer; unknown handles are ignored', async () => {
    const clock = createManualClock();
    let fired = false;
    const handle = clock.setTimeout(() => {
      fired = true;
    }, 5);
    clock.clearTimeout(handle);
    clock.clearTimeout(handle);
    clock.clearTimeout(undefined);
    clock.clearTimeout(42);
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(10);
    expect(fired).toBe(false);
  });

  it('mirrors Node: delays of 0, negative, NaN or beyond 2^31−1 fire after 1 ms', async () => {
    const clock = createManualClock();
    const fired: number[] = [];
    for (const delay of [0, -5, Number.NaN, MAX_TIMER_DELAY_MS + 1]) clock.setTimeout(() => fired.push(delay), delay);
    await clock.advance(0);
    expect(fired).toEqual([]);
    await clock.advance(1);
    expect(fired).toHaveLength(4);
  });

  it('runs a timer callback in the async context it was created in', async () => {
    const storage = new AsyncLocalStorage<string>();
    const clock = createManualClock();
    let seen: string | undefined;
    storage.run('creator', () => clock.setTimeout(() => (seen = storage.getStore()), 1));
    await storage.run('advancer', () => clock.advance(1));
    expect(seen).toBe('creator');
  });

  it('runAll() runs timers created by timers until none is left', async () => {
    const clock = createManualClock();
    let count = 0;
    const tick = (): void => {
      if (++count < 5) clock.setTimeout(tick, 100);
    };
    clock.setTimeout(tick, 100);
    await clock.runAll();
    expect(count).toBe(5);
    expect(clock.now()).toBe(500);
    expect(clock.pendingTimers).toBe(0);
  });

  it('throws instead of spinning forever when timers keep scheduling timers', async () => {
    const clock = createManualClock({ maxTimers: 50 });
    const forever = (): void => {
      clock.setTimeout(forever, 1);
    };
    forever();
    await expect(clock.runAll()).rejects.toThrow(/keeps scheduling timers/);
  });

  it('returns handles that answer unref()/ref() like Node timers', () => {
    const clock = createManualClock();
    const handle = clock.setTimeout(() => undefined, 1) as { unref(): unknown; ref(): unknown; hasRef(): boolean };
    expect(handle.unref()).toBe(handle);
    expect(handle.ref()).toBe(handle);
    expect(handle.hasRef()).toBe(true);
  });

  it('rejects bad input', async () => {
    expect(() => createManualClock({ start: Number.NaN })).toThrow(/`start`/);
    expect(() => createManualClock({ maxTimers: 0 })).toThrow(/`maxTimers`/);
    expect(() => createManualClock({ begin: 1 } as never)).toThrow(/Unknown option `begin`/);
    const clock = createManualClock();
    expect(() => clock.advance(-1)).toThrow(RangeError);
    expect(() => clock.advance(Infinity)).toThrow(/runAll/);
    expect(() => clock.setTimeout('code' as never, 1)).toThrow(/`callback`/);
    await clock.flush();
  });
});
