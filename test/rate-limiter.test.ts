import diagnosticsChannel from 'node:diagnostics_channel';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  channelNames,
  isRateLimitError,
  KeyedRateLimiter,
  RateLimitError,
  RateLimiter,
  TimeoutError,
  withTimeout,
  type RateLimitMessage,
} from '../src/index.js';
import { abortListenerCount, createManualClock } from '../src/testing.js';
import { flush, observe, settledHeap } from './fixtures/observe.js';

function reasonOf(outcome: { readonly status: string; readonly reason?: unknown }): unknown {
  expect(outcome.status).toBe('rejected');
  return outcome.reason;
}

describe('RateLimiter: the bucket', () => {
  it('starts full with burst tokens and refills at ratePerSecond, up to burst', async () => {
    const clock = createManualClock();
    const limiter = new RateLimiter({ ratePerSecond: 10, burst: 3, clock });
    expect([limiter.tryAcquire(), limiter.tryAcquire(), limiter.tryAcquire(), limiter.tryAcquire()]).toEqual([
      true,
      true,
      true,
      false,
    ]);
    await clock.advance(99);
    expect(limiter.tryAcquire()).toBe(false);
    await clock.advance(1);
    expect(limiter.tryAcquire()).toBe(true);
    await clock.advance(250);
    expect(limiter.available).toBeCloseTo(2.5, 9);
    await clock.advance(10_000);
    expect(limiter.available).toBe(3);
    expect(limiter.tryAcquire(3)).toBe(true);
    expect(limiter.tryAcquire(0.5)).toBe(false);
  });

  it('defaults burst to one second’s worth (at least 1)', () => {
    expect(new RateLimiter({ ratePerSecond: 20 }).burst).toBe(20);
    expect(new RateLimiter({ ratePerSecond: 0.1 }).burst).toBe(1);
  });

  it('acquire takes free tokens at once, and arms no timer', async () => {
    const clock = createManualClock();
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 2, clock });
    const first = observe(limiter.acquire());
    const second = observe(limiter.acquire({ cost: 1 }));
    await flush();
    expect(first.outcome.status).toBe('fulfilled');
    expect(second.outcome.status).toBe('fulfilled');
    expect(clock.pendingTimers).toBe(0);
  });

  it('waiters are served FIFO, each when its tokens have refilled, with one timer at a time', async () => {
    const clock = createManualClock();
    const limiter = new RateLimiter({ ratePerSecond: 10, burst: 1, clock });
    limiter.tryAcquire();
    const grantedAt: [string, number][] = [];
    const waits = ['a', 'b', 'c'].map((name) =>
      limiter.acquire().then(() => {
        grantedAt.push([name, clock.now()]);
      }),
    );
    expect(limiter.waiting).toBe(3);
    expect(clock.pendingTimers).toBe(1);
    expect(limiter.tryAcquire()).toBe(false); // nobody overtakes the queue
    await clock.advance(300);
    await Promise.all(waits);
    expect(grantedAt).toEqual([
      ['a', 100],
      ['b', 200],
      ['c', 300],
    ]);
    expect(clock.pendingTimers).toBe(0);
    expect(limiter.waiting).toBe(0);
  });

  it('a costly waiter at the head is not overtaken by cheaper ones behind it', async () => {
    const clock = createManualClock();
    const limiter = new RateLimiter({ ratePerSecond: 10, burst: 5, clock });
    limiter.tryAcquire(5);
    const order: string[] = [];
    const big = limiter.acquire({ cost: 4 }).then(() => order.push(`big@${String(clock.now())}`));
    const small = limiter.acquire({ cost: 1 }).then(() => order.push(`small@${String(clock.now())}`));
    await clock.advance(100);
    await flush();
    expect(order).toEqual([]); // 1 token is there, but the head needs 4
    await clock.advance(400);
    await Promise.all([big, small]);
    expect(order).toEqual(['big@400', 'small@500']);
  });
});

describe('RateLimiter: deadlines', () => {
  it('rejects at once with RateLimitError when the wait would pass the ambient deadline', async () => {
    const clock = createManualClock();
    const limiter = new RateLimiter({ ratePerSecond: 10, burst: 1, name: 'search', clock });
    limiter.tryAcquire();
    const messages: RateLimitMessage[] = [];
    const onMessage = (message: unknown): void => {
      messages.push(message as RateLimitMessage);
    };
    diagnosticsChannel.subscribe(channelNames.rateLimit, onMessage);
    try {
      const refused = observe(withTimeout(50, () => limiter.acquire(), { clock }));
      await flush();
      const error = reasonOf(refused.outcome) as RateLimitError;
      expect(error).toBeInstanceOf(RateLimitError);
      expect(isRateLimitError(error)).toBe(true);
      expect(error.limiterName).toBe('search');
      expect(error.retryAfterMs).toBe(100);
      expect(messages).toEqual([{ name: 'search', key: undefined, cost: 1, retryAfterMs: 100 }]);
      expect(limiter.waiting).toBe(0);
      expect(clock.pendingTimers).toBe(0);
      // A deadline the wait fits in: it waits.
      const fits = observe(withTimeout(150, () => limiter.acquire(), { clock }));
      await clock.advance(100);
      expect(fits.outcome.status).toBe('fulfilled');
    } finally {
      diagnosticsChannel.unsubscribe(channelNames.rateLimit, onMessage);
    }
  });

  it('counts the queue ahead: the wait is for every queued cost plus its own', async () => {
    const clock = createManualClock();
    const limiter = new RateLimiter({ ratePerSecond: 10, burst: 1, clock });
    limiter.tryAcquire();
    const ahead = [limiter.acquire(), limiter.acquire()];
    const refused = observe(limiter.acquire({ timeout: 250 }));
    await flush();
    expect((reasonOf(refused.outcome) as RateLimitError).retryAfterMs).toBe(300);
    const fits = observe(limiter.acquire({ timeout: 301 }));
    await clock.advance(300);
    await Promise.all(ahead);
    expect(fits.outcome.status).toBe('fulfilled');
  });

  it('timeout: 0 takes free tokens and refuses at once otherwise', async () => {
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1, clock: createManualClock() });
    await limiter.acquire({ timeout: 0 });
    await expect(limiter.acquire({ timeout: 0 })).rejects.toBeInstanceOf(RateLimitError);
  });

  it('inside a scope already past its deadline rejects with its TimeoutError, tokens or not', async () => {
    const clock = createManualClock();
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 5, clock });
    const run = observe(
      withTimeout(
        10,
        async () => {
          await clock.advance(10);
          return limiter.acquire();
        },
        { clock, name: 'late' },
      ),
    );
    await flush();
    await flush();
    expect((reasonOf(run.outcome) as TimeoutError).scopeName).toBe('late');
    expect(limiter.available).toBe(5);
  });
});

describe('RateLimiter: cancellation', () => {
  it('an aborted waiter rejects with the reason (===), takes nothing and leaves no trace', async () => {
    const clock = createManualClock();
    const limiter = new RateLimiter({ ratePerSecond: 10, burst: 2, clock });
    limiter.tryAcquire(2);
    const controller = new AbortController();
    const reason = { why: 'client left' };
    const aborted = observe(limiter.acquire({ cost: 2, signal: controller.signal }));
    const behind = observe(limiter.acquire({ cost: 1 }));
    await clock.advance(100);
    expect(behind.outcome.status).toBe('pending'); // 1 token is there, but the head needs 2
    controller.abort(reason);
    await flush();
    expect(reasonOf(aborted.outcome)).toBe(reason);
    expect(behind.outcome.status).toBe('fulfilled'); // served at once from the token the head did not take
    expect(abortListenerCount(controller.signal)).toBe(0);
    expect(limiter.waiting).toBe(0);
    expect(clock.pendingTimers).toBe(0);
    expect(limiter.available).toBeCloseTo(0, 9);
  });

  it('an already-aborted signal rejects with its reason, even with tokens free', async () => {
    const limiter = new RateLimiter({ ratePerSecond: 1 });
    const reason = new Error('already');
    await expect(limiter.acquire({ signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(limiter.available).toBe(1);
  });

  it('the ambient scope’s cancellation releases a waiter with its reason', async () => {
    const clock = createManualClock();
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1, clock });
    limiter.tryAcquire();
    const reason = new Error('shutdown');
    const run = observe(
      withTimeout(
        Infinity,
        (scope) => {
          const waiting = limiter.acquire();
          scope.cancel(reason);
          return waiting;
        },
        { clock },
      ),
    );
    await flush();
    expect(reasonOf(run.outcome)).toBe(reason);
    expect(limiter.waiting).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('1,000 waiters on one long-lived signal, all aborted, leave no listener and no timer', async () => {
    const clock = createManualClock();
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1, clock });
    limiter.tryAcquire();
    const controller = new AbortController();
    const waits = Array.from({ length: 1_000 }, () => limiter.acquire({ signal: controller.signal }));
    expect(abortListenerCount(controller.signal)).toBeLessThanOrEqual(1);
    controller.abort('stop');
    const outcomes = await Promise.allSettled(waits);
    expect(outcomes.every((o) => o.status === 'rejected' && o.reason === 'stop')).toBe(true);
    expect(abortListenerCount(controller.signal)).toBe(0);
    expect(clock.pendingTimers).toBe(0);
    expect(limiter.waiting).toBe(0);
  });
});

describe('RateLimiter: never grants more than burst + rate × elapsed', () => {
  it('holds for any sequence of tryAcquire, acquire and aborts (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.double({ min: 0.5, max: 1_000, noNaN: true }),
        fc.double({ min: 1, max: 20, noNaN: true }),
        fc.array(
          fc.record({
            dt: fc.integer({ min: 0, max: 500 }),
            cost: fc.double({ min: 0.1, max: 1, noNaN: true }),
            kind: fc.constantFrom('try', 'acquire', 'abort'),
          }),
          { minLength: 1, maxLength: 60 },
        ),
        async (ratePerSecond, burst, steps) => {
          const clock = createManualClock();
          const limiter = new RateLimiter({ ratePerSecond, burst, clock });
          let granted = 0;
          let queued = 0;
          const check = (): void => {
            expect(granted).toBeLessThanOrEqual(burst + (ratePerSecond * clock.now()) / 1_000 + 1e-6);
          };
          const waits: Promise<void>[] = [];
          for (const { dt, cost, kind } of steps) {
            await clock.advance(dt);
            const tokens = cost * burst;
            if (kind === 'try') {
              if (limiter.tryAcquire(tokens)) granted += tokens;
              check();
              continue;
            }
            const controller = new AbortController();
            queued++;
            waits.push(
              limiter.acquire({ cost: tokens, signal: controller.signal }).then(
                () => {
                  granted += tokens;
                  check();
                },
                () => undefined,
              ),
            );
            if (kind === 'abort') controller.abort();
          }
          await clock.runAll();
          await Promise.all(waits);
          expect(queued).toBe(waits.length);
          expect(limiter.waiting).toBe(0);
          expect(clock.pendingTimers).toBe(0);
          check();
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('KeyedRateLimiter', () => {
  it('keeps one bucket per key', async () => {
    const clock = createManualClock();
    const limiter = new KeyedRateLimiter<string>({ ratePerSecond: 1, burst: 1, maxKeys: 10, clock });
    expect(limiter.tryAcquire('a')).toBe(true);
    expect(limiter.tryAcquire('a')).toBe(false);
    expect(limiter.tryAcquire('b')).toBe(true);
    const waiting = observe(limiter.acquire('a'));
    await clock.advance(999);
    expect(waiting.outcome.status).toBe('pending');
    await clock.advance(1);
    expect(waiting.outcome.status).toBe('fulfilled');
    expect(limiter.size).toBe(2);
    expect(limiter.available('never-seen')).toBe(1);
  });

  it('evicts a full bucket before a depleted one: nothing is lost', async () => {
    const clock = createManualClock();
    const limiter = new KeyedRateLimiter<string>({ ratePerSecond: 1, burst: 2, maxKeys: 2, clock });
    limiter.tryAcquire('old'); // refills to full within 1 s
    await clock.advance(1_000);
    limiter.tryAcquire('hot', 2); // depleted, recently used
    limiter.tryAcquire('old'); // 'old' is now the most recent…
    await clock.advance(1_000); // …and full again; 'hot' has 1 of 2
    expect(limiter.tryAcquire('new')).toBe(true);
    expect(limiter.size).toBe(2);
    // 'hot' kept its debt: it was the least recently used, but not full, so 'old' went.
    expect(limiter.available('hot')).toBe(1);
    expect(limiter.available('old')).toBe(2);
  });

  it('never evicts a bucket with waiters; with every bucket waited on, a new key is refused', async () => {
    const clock = createManualClock();
    const limiter = new KeyedRateLimiter<string>({ ratePerSecond: 1, burst: 1, maxKeys: 2, clock });
    limiter.tryAcquire('a');
    limiter.tryAcquire('b');
    const a = observe(limiter.acquire('a'));
    const b = observe(limiter.acquire('b'));
    expect(limiter.tryAcquire('c')).toBe(false);
    const refused = observe(limiter.acquire('c'));
    await flush();
    const error = reasonOf(refused.outcome) as RateLimitError;
    expect(error).toBeInstanceOf(RateLimitError);
    expect(error.retryAfterMs).toBe(1_000);
    await clock.advance(1_000);
    expect(a.outcome.status).toBe('fulfilled');
    expect(b.outcome.status).toBe('fulfilled');
    expect(limiter.tryAcquire('c')).toBe(true); // the buckets are idle again: one made room
    expect(limiter.size).toBe(2);
  });

  it('an aborted waiter leaves its key’s bucket evictable again', async () => {
    const clock = createManualClock();
    const limiter = new KeyedRateLimiter<string>({ ratePerSecond: 1, burst: 1, maxKeys: 1, clock });
    limiter.tryAcquire('a');
    const controller = new AbortController();
    const waiting = observe(limiter.acquire('a', { signal: controller.signal }));
    expect(limiter.tryAcquire('b')).toBe(false);
    controller.abort('gone');
    await flush();
    expect(reasonOf(waiting.outcome)).toBe('gone');
    expect(clock.pendingTimers).toBe(0);
    expect(limiter.tryAcquire('b')).toBe(true);
    expect(limiter.size).toBe(1);
  });

  it('given 100× maxKeys keys, holds at most maxKeys buckets and its heap stays bounded', async () => {
    const clock = createManualClock();
    const maxKeys = 1_000;
    const limiter = new KeyedRateLimiter<string>({ ratePerSecond: 1, burst: 5, maxKeys, clock });
    for (let i = 0; i < maxKeys; i++) limiter.tryAcquire(`warm-${String(i)}`);
    const before = await settledHeap();
    for (let i = 0; i < 100 * maxKeys; i++) {
      limiter.tryAcquire(`key-${String(i)}`);
      if (i % 1_000 === 0) await clock.advance(10);
    }
    expect(limiter.size).toBe(maxKeys);
    const after = await settledHeap();
    // 100,000 buckets kept would be several MB; a bounded map stays where it was.
    expect(after - before).toBeLessThan(512 * 1024);
  }, 30_000);
});
