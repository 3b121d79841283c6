import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../src/circuit-breaker.js';
import { TimeoutError } from '../src/errors.js';
import { KeyedRateLimiter, RateLimiter } from '../src/rate-limiter.js';
import { hedge } from '../src/hedge.js';
import { safeRace } from '../src/race.js';
import { Semaphore } from '../src/semaphore.js';
import { singleFlight } from '../src/single-flight.js';
import { timeoutContext, withTimeout } from '../src/scope.js';
import { safeSleep } from '../src/sleep.js';
import { safeWaitFor } from '../src/wait-for.js';
import { abortListenerCount, activeTimerCount, assertNoLeaks, createManualClock } from '../src/testing.js';
import { never, observe, realDelay, settledHeap, trackUnhandledRejections, untilAborted } from './fixtures/observe.js';

const gc = (): void => {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) throw new Error('run the tests with --expose-gc');
  collect();
};

let warnings: Error[] = [];
const onWarning = (warning: Error): void => {
  warnings.push(warning);
};
let rejections: ReturnType<typeof trackUnhandledRejections>;

beforeEach(() => {
  warnings = [];
  process.on('warning', onWarning);
  rejections = trackUnhandledRejections();
});

afterEach(() => {
  process.off('warning', onWarning);
  rejections.stop();
  expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
  expect(rejections.reasons).toEqual([]);
});

/** One operation of each kind, all following `signal`. */
function operation(i: number, signal: AbortSignal): Promise<unknown> {
  switch (i % 4) {
    case 0:
      return safeWaitFor(Promise.resolve(i), { timeout: 60_000, signal });
    case 1:
      return withTimeout(60_000, () => Promise.resolve(i), { signal });
    case 2:
      return safeWaitFor((s) => (s.aborted ? -1 : i), { timeout: 60_000, signal });
    default:
      return withTimeout(60_000, (scope) => safeWaitFor(Promise.resolve(scope.remaining() > 0), 60_000), { signal });
  }
}

describe('leak hygiene on one long-lived signal', () => {
  it('100,000 sequential operations leave no listener, no timer, and under 1 MB of heap', async () => {
    const parent = new AbortController();
    const timersBefore = activeTimerCount();
    for (let i = 0; i < 10_000; i++) await operation(i, parent.signal); // warm-up: JIT and caches
    const heapBefore = await settledHeap();
    for (let i = 0; i < 100_000; i++) await operation(i, parent.signal);
    const heapAfter = await settledHeap();
    expect(abortListenerCount(parent.signal)).toBe(0);
    assertNoLeaks({ signals: [parent.signal], timersBefore });
    expect(heapAfter - heapBefore).toBeLessThan(1024 * 1024);
  }, 60_000);

  it('10,000 concurrent operations share one listener, and leave none', async () => {
    const parent = new AbortController();
    const timersBefore = activeTimerCount();
    const heapBefore = await settledHeap();
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => {
      openGate = resolve;
    });
    const running = Array.from({ length: 10_000 }, (_, i) =>
      withTimeout(
        60_000,
        async () => {
          await gate;
          return operation(i, parent.signal);
        },
        { signal: parent.signal },
      ),
    );
    expect(abortListenerCount(parent.signal)).toBe(1);
    openGate();
    await Promise.all(running);
    expect(abortListenerCount(parent.signal)).toBe(0);
    assertNoLeaks({ signals: [parent.signal], timersBefore });
    running.length = 0;
    expect((await settledHeap()) - heapBefore).toBeLessThan(1024 * 1024);
  }, 60_000);

  it('10,000 concurrent sleeps aborted at once reject with the reason and leave nothing', async () => {
    const clock = createManualClock();
    const parent = new AbortController();
    const sleeps = Array.from({ length: 10_000 }, () =>
      safeSleep(1_000, { clock, signal: parent.signal }).catch((e: unknown) => e),
    );
    expect(abortListenerCount(parent.signal)).toBe(1);
    expect(clock.pendingTimers).toBe(10_000);
    const reason = new Error('shutdown');
    parent.abort(reason);
    const outcomes = await Promise.all(sleeps);
    expect(outcomes.every((outcome) => outcome === reason)).toBe(true);
    assertNoLeaks({ signals: [parent.signal], clock });
  }, 30_000);

  it('10,000 scopes nested under one ambient scope link through the tree, not through listeners', async () => {
    const clock = createManualClock();
    await withTimeout(
      10_000,
      async (outer) => {
        const inner = Array.from({ length: 10_000 }, () => withTimeout(5_000, () => safeSleep(100)));
        expect(abortListenerCount(outer.signal)).toBe(0);
        expect(clock.pendingTimers).toBe(1 + 10_000 * 2); // outer + (inner deadline + sleep) each
        await clock.advance(100);
        await Promise.all(inner);
      },
      { clock },
    );
    expect(clock.pendingTimers).toBe(0);
  }, 30_000);
});

describe('leak hygiene of the policies on one long-lived signal', () => {
  it('100,000 breaker calls and limiter acquires (successes, failures, trials, refusals) leave no listener, no timer, and under 1 MB of heap', async () => {
    const parent = new AbortController();
    const timersBefore = activeTimerCount();
    // Opens at each failure and half-opens at once: every call after one is a trial.
    const breaker = new CircuitBreaker({ name: 'hygiene', failureThreshold: 1, openMs: 0 });
    const open = new CircuitBreaker({ name: 'open', failureThreshold: 1, openMs: Number.POSITIVE_INFINITY });
    await open.run(() => Promise.reject(new Error('down'))).catch(() => undefined);
    const limiter = new RateLimiter({ ratePerSecond: 1e9, burst: 1e9 });
    const empty = new RateLimiter({ ratePerSecond: 0.001, burst: 1 });
    empty.tryAcquire();
    const keyed = new KeyedRateLimiter<number>({ ratePerSecond: 1e9, burst: 1e9, maxKeys: 100 });
    const fail = (): Promise<never> => Promise.reject(new Error('down'));
    const step = (i: number): Promise<unknown> => {
      const signal = parent.signal;
      switch (i % 6) {
        case 0:
          return breaker.run(({ signal: s }) => (s.aborted ? -1 : i), { signal });
        case 1:
          return breaker.run(fail, { signal }).catch(() => undefined);
        case 2:
          return limiter.acquire({ signal });
        case 3:
          return empty.acquire({ signal, timeout: 5 }).catch(() => undefined); // refused at once
        case 4:
          return open.run(() => i, { signal }).catch(() => undefined); // turned away at once
        default:
          return keyed.acquire(i % 1_000, { signal });
      }
    };
    for (let i = 0; i < 10_000; i++) await step(i); // warm-up
    const heapBefore = await settledHeap();
    for (let i = 0; i < 100_000; i++) await step(i);
    const heapAfter = await settledHeap();
    expect(abortListenerCount(parent.signal)).toBe(0);
    assertNoLeaks({ signals: [parent.signal], timersBefore });
    expect(keyed.size).toBeLessThanOrEqual(100);
    expect(heapAfter - heapBefore).toBeLessThan(1024 * 1024);
  }, 60_000);

  it('10,000 limiter waiters aborted at once reject with the reason and leave nothing', async () => {
    const parent = new AbortController();
    const timersBefore = activeTimerCount();
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1 });
    limiter.tryAcquire();
    const waits = Array.from({ length: 10_000 }, () => limiter.acquire({ signal: parent.signal }));
    expect(abortListenerCount(parent.signal)).toBe(1);
    expect(activeTimerCount()).toBeLessThanOrEqual(timersBefore + 1); // one timer, for the head of the queue
    const reason = new Error('shutdown');
    parent.abort(reason);
    const outcomes = await Promise.allSettled(waits);
    expect(outcomes.every((o) => o.status === 'rejected' && o.reason === reason)).toBe(true);
    expect(limiter.waiting).toBe(0);
    expect(abortListenerCount(parent.signal)).toBe(0);
    assertNoLeaks({ signals: [parent.signal], timersBefore });
  });
});

describe('leak hygiene of the resilience policies on one long-lived signal', () => {
  it('100,000 races, hedges, single flights and bulkhead calls leave no listener, no timer, under 1 MB of heap', async () => {
    const parent = new AbortController();
    const signal = parent.signal;
    const timersBefore = activeTimerCount();
    const load = singleFlight((key: number, s: AbortSignal) => (s.aborted ? -1 : Promise.resolve(key)));
    const bulkhead = new Semaphore(2, { maxQueue: 1 });
    const one = async (i: number): Promise<void> => {
      switch (i % 4) {
        case 0:
          await safeRace([untilAborted, () => Promise.resolve(i)], { signal, timeout: 60_000 });
          return;
        case 1:
          await hedge((s, attempt) => (attempt === 1 ? Promise.resolve(i) : untilAborted(s)), {
            delayMs: 60_000,
            signal,
            timeout: 60_000,
          });
          return;
        case 2:
          await Promise.all([load(i % 3, { signal }), load(i % 3, { signal })]);
          return;
        default:
          await Promise.all([
            bulkhead.run(() => i, { signal }),
            bulkhead.run(() => i, { signal }),
            bulkhead.run(() => i, { signal }),
            bulkhead.run(() => i, { signal }).catch(() => undefined), // turned away: the queue is full
          ]);
      }
    };
    for (let i = 0; i < 10_000; i++) await one(i); // warm-up: JIT and caches
    const heapBefore = await settledHeap();
    for (let i = 0; i < 100_000; i++) await one(i);
    const heapAfter = await settledHeap();
    assertNoLeaks({ signals: [signal], timersBefore });
    expect(heapAfter - heapBefore).toBeLessThan(1024 * 1024);
  }, 60_000);

  it('losers that reject late, and abandoned single flights, raise no unhandledRejection', async () => {
    const late: ((reason: unknown) => void)[] = [];
    const stubborn = (): Promise<never> => new Promise((_, reject) => void late.push(reject));
    await safeRace([stubborn, () => 'won']);
    await hedge((_s, attempt) => (attempt === 1 ? stubborn() : 'hedged'), { delayMs: 0 });
    const controller = new AbortController();
    const load = singleFlight(() => stubborn());
    const leaving = load('k', { signal: controller.signal }).catch(() => undefined);
    controller.abort(new Error('gone'));
    await leaving;
    for (const reject of late) reject(new Error('late failure'));
    await realDelay(5);
    expect(rejections.reasons).toEqual([]);
  });
});

describe('late settlements', () => {
  it('a late rejection after a timeout raises no unhandledRejection', async () => {
    const clock = createManualClock();
    let rejectLate!: (reason: unknown) => void;
    const late = new Promise((_, reject) => {
      rejectLate = reject;
    });
    const run = observe(withTimeout(10, () => late, { clock }));
    const waited = observe(safeWaitFor(late, { timeout: 10, clock }));
    await clock.advance(10);
    expect(run.outcome.status).toBe('rejected');
    expect(waited.outcome.status).toBe('rejected');
    rejectLate(new Error('late failure'));
    await realDelay(5);
    expect(rejections.reasons).toEqual([]);
  });

  it('a function that throws after its scope was cancelled raises no unhandledRejection', async () => {
    const clock = createManualClock();
    const run = observe(
      withTimeout(
        10,
        async () => {
          await new Promise((resolve) =>
            clock.setTimeout(() => {
              resolve(undefined);
            }, 50),
          );
          throw new Error('thrown long after the timeout');
        },
        { clock },
      ),
    );
    await clock.advance(50);
    expect(run.outcome.status).toBe('rejected');
    await realDelay(5);
    expect(rejections.reasons).toEqual([]);
  });
});

describe('garbage collection', () => {
  it('a deadline survives forced GC when only the promise is held', async () => {
    const run = observe(withTimeout(30, () => never(), { name: 'survivor' }));
    for (let i = 0; i < 5; i++) gc();
    await realDelay(60);
    expect(run.outcome.status).toBe('rejected');
    expect(((run.outcome as { reason: unknown }).reason as TimeoutError).scopeName).toBe('survivor');
  });

  it('a context signal still aborts at its deadline after forced GC when only the signal is held', async () => {
    const signal = (() => timeoutContext(30, { name: 'ctx' }).signal)();
    for (let i = 0; i < 5; i++) gc();
    await realDelay(60);
    expect(signal.aborted).toBe(true);
    expect((signal.reason as TimeoutError).scopeName).toBe('ctx');
  });

  it('a timeout nested in a scope that only an outside signal references survives GC', async () => {
    const outside = new AbortController();
    const run = observe(
      withTimeout(Infinity, () => withTimeout(30, () => never(), { name: 'nested' }), { signal: outside.signal }),
    );
    for (let i = 0; i < 5; i++) gc();
    await realDelay(60);
    expect(((run.outcome as { reason: unknown }).reason as TimeoutError).scopeName).toBe('nested');
    expect(abortListenerCount(outside.signal)).toBe(0);
  });
});

describe('process lifetime', () => {
  it('a child process that awaits settled operations with 60 s timeouts exits at once', async () => {
    const script = fileURLToPath(new URL('./fixtures/exit-at-once.mts', import.meta.url));
    const started = performance.now();
    const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) => {
      execFile(process.execPath, ['--import', 'tsx', script], { timeout: 20_000 }, (error, out) => {
        if (error) reject(error);
        else resolve({ stdout: out });
      });
    });
    expect(stdout.trim()).toBe('settled 1');
    expect(performance.now() - started).toBeLessThan(10_000); // startup alone; a kept-alive timer would mean 60 s
  }, 25_000);
});
