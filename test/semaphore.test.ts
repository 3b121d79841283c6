import { AsyncLocalStorage } from 'node:async_hooks';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isQueueFullError, QueueFullError, TimeoutError } from '../src/errors.js';
import type { QueueFullMessage } from '../src/channels.js';
import { recordChannels } from './fixtures/channels.js';
import { Mutex } from '../src/mutex.js';
import { currentScope, withTimeout } from '../src/scope.js';
import { Semaphore, type Permit } from '../src/semaphore.js';
import { safeSleep } from '../src/sleep.js';
import { abortListenerCount, createManualClock } from '../src/testing.js';
import { flush, observe } from './fixtures/observe.js';

function grantedValue(outcome: { readonly status: string; readonly value?: unknown }): Permit {
  expect(outcome.status).toBe('fulfilled');
  return outcome.value as Permit;
}

describe('Semaphore', () => {
  it('hands out at most `permits` at once and queues the rest', async () => {
    const semaphore = new Semaphore(2);
    const a = await semaphore.acquire();
    const b = await semaphore.acquire();
    expect(semaphore.available).toBe(0);
    const c = observe(semaphore.acquire());
    await flush();
    expect(c.outcome.status).toBe('pending');
    expect(semaphore.waiting).toBe(1);
    a.release();
    await flush();
    grantedValue(c.outcome);
    expect(semaphore.available).toBe(0);
    b.release();
    grantedValue(c.outcome).release();
    expect(semaphore.available).toBe(2);
  });

  it('serves waiters in FIFO order', async () => {
    const semaphore = new Semaphore(1);
    const first = await semaphore.acquire();
    const order: number[] = [];
    const waiters = [1, 2, 3, 4, 5].map((n) =>
      semaphore.acquire().then((permit) => {
        order.push(n);
        permit.release();
      }),
    );
    first.release();
    await Promise.all(waiters);
    expect(order).toEqual([1, 2, 3, 4, 5]);
    expect(semaphore.available).toBe(1);
  });

  it('gives a released permit to the longest waiter: tryAcquire cannot barge in', async () => {
    const semaphore = new Semaphore(1);
    expect(semaphore.tryAcquire()).toBeDefined();
    expect(semaphore.tryAcquire()).toBeUndefined();
    const fresh = new Semaphore(1);
    const permit = fresh.tryAcquire() as Permit;
    const waiter = observe(fresh.acquire());
    permit.release();
    expect(fresh.tryAcquire()).toBeUndefined();
    await flush();
    grantedValue(waiter.outcome).release();
    expect(fresh.tryAcquire()).toBeDefined();
  });

  it('releases a permit exactly once: double release and dispose after release are harmless', async () => {
    const semaphore = new Semaphore(2);
    const permit = await semaphore.acquire();
    expect(permit.released).toBe(false);
    permit.release();
    permit.release();
    permit[Symbol.dispose]();
    expect(permit.released).toBe(true);
    expect(semaphore.available).toBe(2);
    {
      using scoped = await semaphore.acquire();
      expect(scoped.released).toBe(false);
      expect(semaphore.available).toBe(1);
    }
    expect(semaphore.available).toBe(2);
  });

  it('removes an aborted waiter at once, rejecting with the reason (===), and skips it on release', async () => {
    const semaphore = new Semaphore(1);
    const held = await semaphore.acquire();
    const controller = new AbortController();
    const first = observe(semaphore.acquire());
    const middle = observe(semaphore.acquire({ signal: controller.signal }));
    const last = observe(semaphore.acquire());
    expect(semaphore.waiting).toBe(3);
    expect(abortListenerCount(controller.signal)).toBe(1);
    const reason = { why: 'client left' };
    controller.abort(reason);
    expect(semaphore.waiting).toBe(2);
    expect(abortListenerCount(controller.signal)).toBe(0);
    await flush();
    expect(middle.outcome).toEqual({ status: 'rejected', reason });
    expect((middle.outcome as { reason: unknown }).reason).toBe(reason);
    held.release();
    await flush();
    grantedValue(first.outcome).release();
    await flush();
    grantedValue(last.outcome).release();
    expect(semaphore.available).toBe(1);
    expect(semaphore.waiting).toBe(0);
  });

  it('keeps one listener for 10,000 waiters on one signal, and none once they are gone', async () => {
    const semaphore = new Semaphore(1);
    const held = semaphore.tryAcquire() as Permit;
    const controller = new AbortController();
    const waiters = Array.from({ length: 10_000 }, () => observe(semaphore.acquire({ signal: controller.signal })));
    expect(abortListenerCount(controller.signal)).toBe(1);
    held.release();
    await flush();
    grantedValue((waiters[0] as { outcome: { status: string } }).outcome).release();
    controller.abort(new Error('stop'));
    expect(semaphore.waiting).toBe(0);
    expect(abortListenerCount(controller.signal)).toBe(0);
    await flush();
    expect(waiters.filter((w) => w.outcome.status === 'rejected')).toHaveLength(9_998);
    expect(semaphore.available).toBe(0); // waiter #1 holds it
  });

  it("clears the waiter's timer and listener before the acquire settles", async () => {
    const clock = createManualClock();
    const semaphore = new Semaphore(1);
    const held = semaphore.tryAcquire() as Permit;
    const controller = new AbortController();
    let atGrant: [number, number] | undefined;
    const waiting = semaphore.acquire({ signal: controller.signal, timeout: 1_000, clock }).then((permit) => {
      atGrant = [clock.pendingTimers, abortListenerCount(controller.signal)];
      return permit;
    });
    expect(clock.pendingTimers).toBe(1);
    held.release();
    (await waiting).release();
    expect(atGrant).toEqual([0, 0]);
  });

  it('rejects with a TimeoutError at its timeout and leaves the queue', async () => {
    const clock = createManualClock();
    const semaphore = new Semaphore(1);
    semaphore.tryAcquire();
    const waiting = observe(semaphore.acquire({ timeout: 50, clock }));
    await clock.advance(49);
    expect(waiting.outcome.status).toBe('pending');
    await clock.advance(1);
    const error = (waiting.outcome as { reason: unknown }).reason as TimeoutError;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error.timeoutMs).toBe(50);
    expect(semaphore.waiting).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('honours the ambient deadline with no argument threaded', async () => {
    const clock = createManualClock();
    const semaphore = new Semaphore(1);
    semaphore.tryAcquire();
    const outer = observe(withTimeout(20, () => semaphore.acquire(), { clock, name: 'checkout' }));
    await flush();
    expect(semaphore.waiting).toBe(1);
    await clock.advance(20);
    expect(((outer.outcome as { reason: unknown }).reason as TimeoutError).scopeName).toBe('checkout');
    expect(semaphore.waiting).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('rejects at once when the signal or the ambient scope has already ended, even with a free permit', async () => {
    const semaphore = new Semaphore(1);
    const reason = new Error('gone');
    await expect(semaphore.acquire({ signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    const cancelled = new Error('scope cancelled');
    let inner: Promise<Permit> | undefined;
    const outer = withTimeout(Number.POSITIVE_INFINITY, (scope) => {
      scope.cancel(cancelled);
      inner = semaphore.acquire();
      return inner;
    });
    await expect(outer).rejects.toBe(cancelled);
    await expect(inner).rejects.toBe(cancelled);
    expect(semaphore.available).toBe(1);
    expect(semaphore.waiting).toBe(0);
  });

  it("resumes a waiter in the async context that queued it, not the releaser's", async () => {
    const als = new AsyncLocalStorage<string>();
    const semaphore = new Semaphore(1);
    const held = semaphore.tryAcquire() as Permit;
    const seen: (string | undefined)[] = [];
    const waiter = als.run('waiter', async () => {
      const permit = await semaphore.acquire();
      seen.push(als.getStore());
      permit.release();
    });
    const runner = als.run('runner', () =>
      semaphore.run(() => {
        seen.push(als.getStore());
      }),
    );
    als.run('releaser', () => {
      held.release();
    });
    await Promise.all([waiter, runner]);
    expect(seen).toEqual(['waiter', 'runner']);
  });

  it('resumes a waiter inside its own ambient scope', async () => {
    const semaphore = new Semaphore(1);
    const held = semaphore.tryAcquire() as Permit;
    const names: (string | undefined)[] = [];
    const waiting = withTimeout(
      1_000,
      async () => {
        await semaphore.acquire();
        names.push(currentScope()?.name);
      },
      { name: 'waiter-scope' },
    );
    await withTimeout(
      1_000,
      () => {
        held.release();
      },
      { name: 'releaser-scope' },
    );
    await waiting;
    expect(names).toEqual(['waiter-scope']);
  });

  it('run() releases the permit whether fn fulfils or throws', async () => {
    const semaphore = new Semaphore(1);
    await expect(semaphore.run(() => 7)).resolves.toBe(7);
    const failure = new Error('fn failed');
    await expect(semaphore.run(() => Promise.reject(failure))).rejects.toBe(failure);
    await expect(
      semaphore.run(() => {
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(semaphore.available).toBe(1);
  });

  it('throws synchronously for bad input', () => {
    for (const permits of [0, -1, 1.5, Number.NaN]) expect(() => new Semaphore(permits)).toThrow(RangeError);
    expect(() => new Semaphore('2' as unknown as number)).toThrow(TypeError);
    expect(new Semaphore(Number.POSITIVE_INFINITY).tryAcquire()).toBeDefined();
    const semaphore = new Semaphore(1);
    expect(() => semaphore.acquire({ timeout: -1 })).toThrow(RangeError);
    expect(() => semaphore.acquire({ signal: 'x' as never })).toThrow(TypeError);
    expect(() => semaphore.acquire({ priority: 1 } as never)).toThrow(/Unknown option `priority`/);
    expect(() => semaphore.run('fn' as never)).toThrow(TypeError);
  });

  it('keeps FIFO order and the permit bound under random timings and aborts (property-based)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.array(
          fc.record({ holdMs: fc.integer({ min: 0, max: 20 }), abortAtMs: fc.option(fc.integer({ min: 0, max: 40 })) }),
          { maxLength: 25 },
        ),
        async (permits, specs) => {
          const clock = createManualClock();
          const semaphore = new Semaphore(permits);
          const blocker = Array.from({ length: permits }, () => semaphore.tryAcquire() as Permit);
          let holders = 0;
          let peak = 0;
          const order: number[] = [];
          const jobs = specs.map((spec, i) => {
            const controller = new AbortController();
            if (spec.abortAtMs !== null)
              clock.setTimeout(() => {
                controller.abort(new Error('gave up'));
              }, spec.abortAtMs);
            return semaphore
              .run(
                async () => {
                  order.push(i);
                  peak = Math.max(peak, ++holders);
                  await safeSleep(spec.holdMs, { clock });
                  holders--;
                },
                { signal: controller.signal, clock },
              )
              .then(
                () => true,
                () => false,
              );
          });
          clock.setTimeout(() => {
            blocker.forEach((p) => {
              p.release();
            });
          }, 5);
          await clock.runAll();
          const granted = await Promise.all(jobs);
          expect(peak).toBeLessThanOrEqual(permits);
          expect(order).toEqual(granted.flatMap((ok, i) => (ok ? [i] : [])));
          expect(semaphore.available).toBe(permits);
          expect(semaphore.waiting).toBe(0);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('Mutex', () => {
  it('lets one holder in at a time, in order', async () => {
    const mutex = new Mutex();
    const log: string[] = [];
    const write = (line: string): Promise<void> =>
      mutex.run(async () => {
        log.push(`start ${line}`);
        await flush();
        log.push(`end ${line}`);
      });
    expect(mutex.locked).toBe(false);
    const writing = Promise.all([write('a'), write('b'), write('c')]);
    expect(mutex.locked).toBe(true);
    await writing;
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    expect(mutex.locked).toBe(false);
    expect(mutex).toBeInstanceOf(Semaphore);
  });
});

describe('Semaphore with maxQueue (a bulkhead) and a name', () => {
  it('rejects at once with a QueueFullError once maxQueue callers wait; the queue frees as it drains', async () => {
    const semaphore = new Semaphore(1, { name: 'db', maxQueue: 2 });
    const held = semaphore.tryAcquire() as Permit;
    const a = observe(semaphore.acquire());
    const b = observe(semaphore.acquire());
    const c = observe(semaphore.acquire());
    await flush();
    expect(a.outcome.status).toBe('pending');
    expect(b.outcome.status).toBe('pending');
    expect(c.outcome.status).toBe('rejected');
    const error = (c.outcome as { reason: unknown }).reason as QueueFullError;
    expect(error).toBeInstanceOf(QueueFullError);
    expect(isQueueFullError(error)).toBe(true);
    expect(error.name).toBe('QueueFullError');
    expect(error.semaphoreName).toBe('db');
    expect(error.maxQueue).toBe(2);
    expect(error.message).toMatch(/"db".*full/);
    expect(error.stack).toMatch(/QueueFullError/);
    expect(semaphore.waiting).toBe(2);
    held.release();
    await flush();
    grantedValue(a.outcome);
    const d = observe(semaphore.acquire()); // one slot free in the queue again
    await flush();
    expect(d.outcome.status).toBe('pending');
    grantedValue(a.outcome).release();
    await flush();
    grantedValue(b.outcome).release();
    await flush();
    grantedValue(d.outcome).release();
    expect(semaphore.available).toBe(1);
  });

  it('a free permit is granted even with maxQueue 0; a caller who would wait is turned away', async () => {
    const semaphore = new Semaphore(2, { maxQueue: 0 });
    const permits = [await semaphore.acquire(), await semaphore.acquire()];
    const error = await semaphore.acquire().catch((e: unknown) => e);
    expect(isQueueFullError(error)).toBe(true);
    expect((error as QueueFullError).semaphoreName).toBe('Semaphore');
    const run = await semaphore.run(() => 'never').catch((e: unknown) => e);
    expect(isQueueFullError(run)).toBe(true);
    for (const permit of permits) permit.release();
    expect(await semaphore.run(() => 'now')).toBe('now');
  });

  it('a waiter that gave up (abort, timeout) frees its place in the queue', async () => {
    const clock = createManualClock();
    const semaphore = new Semaphore(1, { maxQueue: 1 });
    semaphore.tryAcquire();
    const controller = new AbortController();
    const first = observe(semaphore.acquire({ signal: controller.signal }));
    expect(isQueueFullError(await semaphore.acquire().catch((e: unknown) => e))).toBe(true);
    controller.abort('gone');
    await flush();
    expect(first.outcome).toEqual({ status: 'rejected', reason: 'gone' });
    const second = observe(semaphore.acquire({ timeout: 10, clock }));
    await clock.advance(10);
    expect((second.outcome as { reason: unknown }).reason).toBeInstanceOf(TimeoutError);
    const third = observe(semaphore.acquire({ timeout: 10, clock }));
    await flush();
    expect(third.outcome.status).toBe('pending');
    await clock.advance(10);
    expect(semaphore.waiting).toBe(0);
  });

  it('names the semaphore in an acquire timeout’s TimeoutError and in run’s scope', async () => {
    const clock = createManualClock();
    const semaphore = new Semaphore(1, { name: 'payments' });
    semaphore.tryAcquire();
    const waiting = observe(semaphore.acquire({ timeout: 25, clock }));
    await clock.advance(25);
    const error = (waiting.outcome as { reason: unknown }).reason as TimeoutError;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error.scopeName).toBe('payments');
    const free = new Semaphore(1, { name: 'payments' });
    expect(await free.run(() => currentScope()?.name)).toBe('payments');
    expect(await new Semaphore(1).run(() => currentScope()?.name)).toBe('Semaphore.run');
    expect(free.name).toBe('payments');
    expect(free.maxQueue).toBe(Number.POSITIVE_INFINITY);
  });

  it('publishes each rejection on loopsafe:queue-full, with the very error the caller gets', async () => {
    const recorder = recordChannels(['loopsafe:queue-full']);
    try {
      const semaphore = new Semaphore(1, { name: 'api', maxQueue: 0 });
      semaphore.tryAcquire();
      const error = await semaphore.acquire().catch((e: unknown) => e);
      expect(recorder.messages<QueueFullMessage>('loopsafe:queue-full')).toEqual([{ name: 'api', maxQueue: 0, error }]);
    } finally {
      recorder.stop();
    }
  });

  it('an aborted signal or a cancelled scope wins over a full queue (their reason, ===)', async () => {
    const semaphore = new Semaphore(1, { maxQueue: 0 });
    semaphore.tryAcquire();
    const reason = new Error('aborted');
    await expect(semaphore.acquire({ signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    const clock = createManualClock();
    const scoped = observe(
      withTimeout(
        10,
        async () => {
          await clock.advance(10);
          return semaphore.acquire();
        },
        { clock, name: 'late' },
      ),
    );
    await clock.advance(10);
    await flush();
    expect(((scoped.outcome as { reason: unknown }).reason as TimeoutError).scopeName).toBe('late');
  });

  it('Mutex takes the same options', async () => {
    const mutex = new Mutex({ name: 'config', maxQueue: 0 });
    using permit = mutex.tryAcquire();
    expect(permit).toBeDefined();
    const error = (await mutex.acquire().catch((e: unknown) => e)) as QueueFullError;
    expect(error.semaphoreName).toBe('config');
    expect(() => new Mutex({ maxQueue: -1 })).toThrow(/`maxQueue`.*-1/);
  });

  it('QueueFullError validates its arguments', () => {
    expect(() => new QueueFullError(5 as never, 1)).toThrow(/`semaphoreName`/);
    expect(() => new QueueFullError('x', -1)).toThrow(/`maxQueue`/);
    expect(new QueueFullError('x', 3, 'custom').message).toBe('custom');
    expect(isQueueFullError(new Error('x', { cause: new QueueFullError('x', 1) }))).toBe(true);
    expect(isQueueFullError({ name: 'QueueFullError' })).toBe(true);
    expect(isQueueFullError(undefined)).toBe(false);
  });
});
