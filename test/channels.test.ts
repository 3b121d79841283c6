import { afterEach, describe, expect, it, vi } from 'vitest';
import { TimeoutError } from '../src/errors.js';
import { safeGather } from '../src/gather.js';
import { retry } from '../src/retry.js';
import { withTimeout } from '../src/scope.js';
import { safeSleep } from '../src/sleep.js';
import { CircuitBreaker } from '../src/circuit-breaker.js';
import { RateLimiter } from '../src/rate-limiter.js';
import { createManualClock } from '../src/testing.js';
import { observe } from './fixtures/observe.js';
import { recordChannels } from './fixtures/channels.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('published by the engine, retry and gather', () => {
  it("loopsafe:timeout: a scope's own deadline, before the enclosing gather cancels, in order", async () => {
    const clock = createManualClock();
    const recorder = recordChannels();
    try {
      const run = observe(
        safeGather([() => withTimeout(50, () => safeSleep(1_000), { name: 'inner' }), () => safeSleep(1_000)], {
          name: 'fan-out',
          clock,
        }),
      );
      await clock.advance(50);
      expect(run.outcome.status).toBe('rejected');
      const [timeout, cancel] = recorder.events;
      expect(timeout?.[0]).toBe('loopsafe:timeout');
      expect(timeout?.[1]).toMatchObject({ scopeName: 'inner', timeoutMs: 50 });
      expect((timeout?.[1] as { error: unknown }).error).toBeInstanceOf(TimeoutError);
      expect(cancel).toEqual([
        'loopsafe:gather:cancel',
        { name: 'fan-out', cause: 'failure', error: expect.any(TimeoutError) as unknown, running: 1 },
      ]);
      expect(recorder.events).toHaveLength(2);
    } finally {
      recorder.stop();
    }
  });

  it('loopsafe:retry: attempt, delay and error before each wait', async () => {
    const clock = createManualClock();
    const recorder = recordChannels();
    const failures = [new Error('one'), new Error('two')];
    try {
      const run = observe(
        retry(
          ({ attempt }) => {
            const failure = failures[attempt - 1];
            if (failure !== undefined) throw failure;
            return 'ok';
          },
          { name: 'fetch', maxAttempts: 3, backoff: { initialMs: 10, jitter: 'none' }, clock },
        ),
      );
      await clock.advance(10);
      await clock.advance(20);
      expect(run.outcome).toEqual({ status: 'fulfilled', value: 'ok' });
      expect(recorder.events).toEqual([
        ['loopsafe:retry', { name: 'fetch', attempt: 1, delayMs: 10, kind: 'error', error: failures[0] }],
        ['loopsafe:retry', { name: 'fetch', attempt: 2, delayMs: 20, kind: 'error', error: failures[1] }],
      ]);
    } finally {
      recorder.stop();
    }
  });

  it("loopsafe:gather:cancel: the gather's own timeout, then an outside abort", async () => {
    const clock = createManualClock();
    const recorder = recordChannels();
    try {
      const timedOut = observe(
        safeGather([() => safeSleep(1_000), () => safeSleep(1_000)], { name: 'slow', timeout: 100, clock }),
      );
      await clock.advance(100);
      expect(timedOut.outcome.status).toBe('rejected');
      const controller = new AbortController();
      const reason = new Error('bye');
      const aborted = observe(safeGather([() => safeSleep(1_000)], { name: 'left', signal: controller.signal, clock }));
      controller.abort(reason);
      await clock.flush();
      expect(aborted.outcome).toEqual({ status: 'rejected', reason });
      expect(recorder.events.map(([name]) => name)).toEqual([
        'loopsafe:timeout',
        'loopsafe:gather:cancel',
        'loopsafe:gather:cancel',
      ]);
      expect(recorder.events[1]?.[1]).toMatchObject({ name: 'slow', cause: 'timeout', running: 2 });
      expect(recorder.events[2]?.[1]).toEqual({ name: 'left', cause: 'abort', error: reason, running: 1 });
    } finally {
      recorder.stop();
    }
  });
});

describe('published by the policies', () => {
  it('loopsafe:circuit: each transition of a breaker, as it happens', async () => {
    const clock = createManualClock();
    const recorder = recordChannels();
    try {
      const breaker = new CircuitBreaker({ name: 'upstream', failureThreshold: 1, openMs: 10, clock });
      await breaker.run(() => Promise.reject(new Error('down'))).catch(() => undefined);
      await clock.advance(10);
      await breaker.run(() => 'up');
      expect(recorder.events).toEqual([
        ['loopsafe:circuit', { name: 'upstream', from: 'closed', to: 'open', reason: 'consecutive-failures', at: 0 }],
        ['loopsafe:circuit', { name: 'upstream', from: 'open', to: 'half-open', reason: 'open-elapsed', at: 10 }],
        ['loopsafe:circuit', { name: 'upstream', from: 'half-open', to: 'closed', reason: 'trial-succeeded', at: 10 }],
      ]);
    } finally {
      recorder.stop();
    }
  });

  it('loopsafe:rate-limit: an acquire refused at once, not a tryAcquire that answers false', async () => {
    const clock = createManualClock();
    const recorder = recordChannels();
    try {
      const limiter = new RateLimiter({ ratePerSecond: 2, burst: 1, name: 'api', clock });
      limiter.tryAcquire();
      expect(limiter.tryAcquire()).toBe(false);
      await limiter.acquire({ timeout: 100 }).catch(() => undefined);
      expect(recorder.events).toEqual([
        ['loopsafe:rate-limit', { name: 'api', key: undefined, cost: 1, retryAfterMs: 500 }],
      ]);
    } finally {
      recorder.stop();
    }
  });
});
