import { describe, expect, it } from 'vitest';
import { MAX_TIMER_DELAY_MS, systemClock } from '../src/clock.js';
import { TimeoutError } from '../src/errors.js';
import { withTimeout } from '../src/scope.js';
import { safeSleep } from '../src/sleep.js';
import { safeWaitFor } from '../src/wait-for.js';
import { abortListenerCount, createManualClock } from '../src/testing.js';
import { block, observe, realDelay, steppedClock } from './fixtures/observe.js';

describe('safeSleep()', () => {
  it('resolves after exactly the given time on the clock', async () => {
    const clock = createManualClock();
    const sleeping = observe(safeSleep(100, { clock }));
    await clock.advance(99);
    expect(sleeping.outcome.status).toBe('pending');
    await clock.advance(1);
    expect(sleeping.outcome).toEqual({ status: 'fulfilled', value: undefined });
    expect(clock.pendingTimers).toBe(0);
  });

  it('stays pending past 2^31−1 ms and wakes exactly at 2^31+10 ms', async () => {
    const clock = createManualClock();
    const ms = 2 ** 31 + 10;
    const sleeping = observe(safeSleep(ms, { clock }));
    await clock.advance(1);
    expect(sleeping.outcome.status).toBe('pending'); // a naive setTimeout would have fired here
    await clock.advance(MAX_TIMER_DELAY_MS);
    expect(sleeping.outcome.status).toBe('pending');
    await clock.advance(ms - 1 - MAX_TIMER_DELAY_MS - 1);
    expect(sleeping.outcome.status).toBe('pending');
    await clock.advance(1);
    expect(sleeping.outcome.status).toBe('fulfilled');
    expect(clock.now()).toBe(ms);
  });

  it('splits a 100-day sleep into timers of at most 2^31−1 ms', async () => {
    const clock = createManualClock();
    const delays: number[] = [];
    const counting = {
      now: () => clock.now(),
      setTimeout: (callback: () => void, ms: number) => {
        delays.push(ms);
        return clock.setTimeout(callback, ms);
      },
      clearTimeout: (handle: unknown) => {
        clock.clearTimeout(handle);
      },
    };
    const ms = 2 ** 33; // ~99 days
    const sleeping = observe(safeSleep(ms, { clock: counting }));
    await clock.advance(ms - 1);
    expect(sleeping.outcome.status).toBe('pending');
    await clock.advance(1);
    expect(sleeping.outcome.status).toBe('fulfilled');
    expect(delays.every((delay) => delay <= MAX_TIMER_DELAY_MS)).toBe(true);
    expect(delays).toHaveLength(Math.ceil(ms / MAX_TIMER_DELAY_MS));
  });

  it('overflowing delays stay pending on the real clock too', async () => {
    const controller = new AbortController();
    const sleeping = observe(safeSleep(2 ** 31 + 10, { signal: controller.signal }));
    await realDelay(20);
    expect(sleeping.outcome.status).toBe('pending');
    controller.abort('done');
    await realDelay(0);
    expect(sleeping.outcome).toEqual({ status: 'rejected', reason: 'done' });
  });

  it('sleeps forever with Infinity, until aborted, without arming a timer', async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    const sleeping = observe(safeSleep(Infinity, { clock, signal: controller.signal }));
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(10 ** 12);
    expect(sleeping.outcome.status).toBe('pending');
    const reason = new Error('stop');
    controller.abort(reason);
    await clock.flush();
    expect(sleeping.outcome).toEqual({ status: 'rejected', reason });
  });

  it('safeSleep(0) yields a full timer turn: a timer that expired while the loop was blocked runs first', async () => {
    const order: string[] = [];
    setTimeout(() => order.push('expired timer'), 1);
    block(5); // the timer above expires without running
    await safeSleep(0);
    order.push('after safeSleep(0)');
    expect(order).toEqual(['expired timer', 'after safeSleep(0)']);
  });

  // The engine's one platform timer may be armed already when safeSleep(0) starts: for an earlier
  // deadline that is now past due, or left armed (and unref'd) for one that was cleared. A 0 ms sleep
  // must not ride it ahead of a timer the caller set before the sleep.
  const armedBefore: Record<string, () => Promise<unknown>> = {
    'no timer armed': () => Promise.resolve(),
    'a timer left armed for a cleared deadline, now past': async () => {
      await safeWaitFor(Promise.resolve(), 1);
      block(3);
    },
    'a pending deadline, now past due': () => {
      const pending = safeSleep(1);
      block(3);
      return Promise.resolve({ pending });
    },
  };

  it.each(Object.entries(armedBefore))(
    'safeSleep(0) wakes after a 0 ms timer set before it (%s)',
    async (_name, arrange) => {
      const held = (await arrange()) as { pending?: Promise<void> } | undefined;
      const order: string[] = [];
      const earlier = held?.pending?.then(() => order.push('earlier sleep'));
      const timer = new Promise<void>((resolve) => {
        setTimeout(() => {
          order.push('timer');
          resolve();
        }, 0);
      });
      await safeSleep(0);
      order.push('safeSleep(0)');
      await Promise.all([earlier, timer]);
      expect(order).toContain('timer');
      expect(order.indexOf('timer')).toBeLessThan(order.indexOf('safeSleep(0)'));
      // Deadlines keep their own order: the earlier sleep wakes no later than the 0 ms one.
      if (earlier !== undefined) expect(order.indexOf('earlier sleep')).toBeLessThan(order.indexOf('safeSleep(0)'));
    },
  );

  it('a deadline armed before a 0 ms timer still fires before it when a safeSleep(0) comes after', async () => {
    const order: string[] = [];
    const first = safeSleep(0).then(() => order.push('sleep armed first'));
    const timer = new Promise<void>((resolve) => {
      setTimeout(() => {
        order.push('timer');
        resolve();
      }, 0);
    });
    const last = safeSleep(0).then(() => order.push('sleep armed last'));
    await Promise.all([first, timer, last]);
    expect(order).toEqual(['sleep armed first', 'timer', 'sleep armed last']);
  });

  it('a timeout armed before the loop blocked still beats the work it bounds after a safeSleep(0)', async () => {
    const outcome = withTimeout(
      5,
      () =>
        new Promise<string>((resolve) => {
          setTimeout(() => {
            resolve('work finished');
          }, 10);
        }),
    ).catch((error: unknown) => error);
    block(20); // both timers fall due
    void safeSleep(0); // an unrelated yield must not move the timeout behind the work's timer
    expect(await outcome).toBeInstanceOf(TimeoutError);
  });

  it('safeSleep(0) on a manual clock waits for the clock, like a 0 ms Node timer (1 ms)', async () => {
    const clock = createManualClock();
    const sleeping = observe(safeSleep(0, { clock }));
    await clock.flush();
    expect(sleeping.outcome.status).toBe('pending');
    await clock.advance(1);
    expect(sleeping.outcome.status).toBe('fulfilled');
  });

  it.each([
    ['an object', {}],
    ['a string', 'text'],
    ['zero', 0],
    ['false', false],
  ])('rejects at once with an already-aborted signal whose reason is %s (===)', async (_label, reason) => {
    const controller = new AbortController();
    controller.abort(reason);
    const clock = createManualClock();
    const sleeping = observe(safeSleep(100, { clock, signal: controller.signal }));
    await clock.flush();
    expect(sleeping.outcome.status).toBe('rejected');
    expect((sleeping.outcome as { reason: unknown }).reason).toBe(reason);
    expect(clock.pendingTimers).toBe(0);
  });

  it('an already-aborted signal with no reason rejects with the platform AbortError', async () => {
    const controller = new AbortController();
    controller.abort(undefined);
    const error = await safeSleep(100, { signal: controller.signal }).catch((e: unknown) => e);
    expect(error).toBe(controller.signal.reason);
    expect(error).toBeInstanceOf(DOMException);
    expect((error as DOMException).name).toBe('AbortError');
  });

  it('rejects with the reason (===) when aborted mid-sleep, removing its listener first', async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    const reason = { why: 'client went away' };
    const sleeping = observe(safeSleep(1_000, { clock, signal: controller.signal }));
    expect(abortListenerCount(controller.signal)).toBe(1);
    await clock.advance(10);
    controller.abort(reason);
    expect(abortListenerCount(controller.signal)).toBe(0);
    expect(clock.pendingTimers).toBe(0);
    await clock.flush();
    expect((sleeping.outcome as { reason: unknown }).reason).toBe(reason);
  });

  it('removes its listener and timer when it completes normally', async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    const sleeping = observe(safeSleep(10, { clock, signal: controller.signal }));
    await clock.advance(10);
    expect(sleeping.outcome.status).toBe('fulfilled');
    expect(abortListenerCount(controller.signal)).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('stops at the ambient deadline and rejects with that scope’s TimeoutError', async () => {
    const clock = createManualClock();
    const run = observe(withTimeout(50, () => safeSleep(1_000), { clock, name: 'request' }));
    await clock.advance(49);
    expect(run.outcome.status).toBe('pending');
    await clock.advance(1);
    const reason = (run.outcome as { reason: unknown }).reason;
    expect(reason).toBeInstanceOf(TimeoutError);
    expect((reason as TimeoutError).scopeName).toBe('request');
    expect(clock.pendingTimers).toBe(0);
  });

  it('inherits the ambient scope’s clock', async () => {
    const clock = createManualClock();
    const run = observe(withTimeout(Infinity, () => safeSleep(30), { clock }));
    await clock.advance(30);
    expect(run.outcome.status).toBe('fulfilled');
  });

  it('an unref’d sleep does not keep the process alive (its timer is unref’d)', () => {
    const handles: { unref: () => void; unrefCalled: boolean }[] = [];
    const clock = {
      now: () => systemClock.now(),
      setTimeout: () => {
        const handle = {
          unrefCalled: false,
          unref() {
            handle.unrefCalled = true;
          },
        };
        handles.push(handle);
        return handle;
      },
      clearTimeout: () => undefined,
    };
    void safeSleep(1_000, { clock, unref: true }).catch(() => undefined);
    void safeSleep(1_000, { clock }).catch(() => undefined);
    expect(handles.map((h) => h.unrefCalled)).toEqual([true, false]);
  });

  it('counts a timer that fires within its 1 ms granularity as on time, instead of losing a loop turn', async () => {
    const stepped = steppedClock();
    const sleeping = observe(safeSleep(100, { clock: stepped.clock }));
    stepped.setNow(99.4); // Node timers count whole milliseconds from a loop time that can lag performance.now()
    stepped.fireNext();
    await realDelay(0);
    expect(sleeping.outcome.status).toBe('fulfilled');
    expect(stepped.pending).toHaveLength(0);
  });

  it('ends when its timer fires, even if the clock has not moved at all (fake timers that leave now() alone)', async () => {
    const stepped = steppedClock();
    const sleeping = observe(safeSleep(100, { clock: stepped.clock }));
    stepped.fireNext(); // now() still reads 0, as performance.now() does under mock.timers
    await realDelay(0);
    expect(sleeping.outcome.status).toBe('fulfilled');
    expect(stepped.pending).toHaveLength(0);
  });

  it('re-arms only the chunks of a delay past 2^31−1 ms, from the time each chunk stood for', async () => {
    const stepped = steppedClock();
    const sleeping = observe(safeSleep(2 ** 31 + 5, { clock: stepped.clock }));
    stepped.fireNext(); // the first chunk, 2^31−1 ms: the clock itself never moves
    await realDelay(0);
    expect(sleeping.outcome.status).toBe('pending');
    expect(stepped.pending).toHaveLength(1);
    stepped.fireNext(); // the remaining 6 ms
    await realDelay(0);
    expect(sleeping.outcome.status).toBe('fulfilled');
  });

  describe('bad input', () => {
    it.each([
      [-1, RangeError, /`ms`.*-1/],
      [Number.NaN, RangeError, /`ms`.*NaN/],
      [-Infinity, RangeError, /`ms`.*-Infinity/],
      ['10', TypeError, /`ms`.*"10"/],
      [undefined, TypeError, /`ms`.*undefined/],
      [null, TypeError, /`ms`.*null/],
      [10n, TypeError, /`ms`.*10n/],
    ])('safeSleep(%s) throws synchronously', (ms, ErrorType, message) => {
      expect(() => safeSleep(ms as number)).toThrow(ErrorType);
      expect(() => safeSleep(ms as number)).toThrow(message);
    });

    it('rejects bad options synchronously, naming them', () => {
      expect(() => safeSleep(1, { signal: {} as AbortSignal })).toThrow(/`signal`.*an object/);
      expect(() => safeSleep(1, { clock: { now: () => 0 } as never })).toThrow(/`clock`/);
      expect(() => safeSleep(1, { unref: 'yes' as never })).toThrow(/`unref`.*"yes"/);
      expect(() => safeSleep(1, { sigal: undefined } as never)).toThrow(/Unknown option `sigal`/);
      expect(() => safeSleep(1, 5 as never)).toThrow(/options of safeSleep\(\)/);
    });
  });
});
