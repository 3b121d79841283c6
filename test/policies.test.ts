/**
 * withSafeAsync's policies compose in one order, outermost first:
 * call scope → concurrency → rate limit → retry → breaker → attempt timeout → fn.
 * Each test here would fail if two neighbouring layers were swapped.
 */
import { describe, expect, it } from 'vitest';
import {
  BrokenCircuitError,
  CircuitBreaker,
  isBrokenCircuitError,
  RateLimitError,
  RateLimiter,
  TimeoutError,
  withSafeAsync,
} from '../src/index.js';
import { createManualClock } from '../src/testing.js';
import { flush, never, observe } from './fixtures/observe.js';

const quickRetry = { backoff: { initialMs: 1, jitter: 'none' as const } };

/** Lets retries run: each backoff wait is armed a few promise turns after the failure that caused it. */
async function runRetries(clock: ReturnType<typeof createManualClock>): Promise<void> {
  for (let i = 0; i < 20; i++) {
    await flush();
    await clock.runAll();
  }
}

describe('withSafeAsync: retry → breaker', () => {
  it('each attempt passes the breaker: once it opens mid-retry, the retries stop with BrokenCircuitError', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'upstream', failureThreshold: 2, clock });
    let calls = 0;
    const call = withSafeAsync(
      () => {
        calls++;
        return Promise.reject(new Error('503'));
      },
      { breaker, retry: { ...quickRetry, maxAttempts: 5 }, clock },
    );
    const run = observe(call());
    await runRetries(clock);
    expect(run.outcome.status).toBe('rejected');
    const error = (run.outcome as { reason: unknown }).reason;
    expect(isBrokenCircuitError(error)).toBe(true);
    expect((error as BrokenCircuitError).breakerName).toBe('upstream');
    // Breaker outside retry would have let all 5 attempts run and counted one failure.
    expect(calls).toBe(2);
    expect(breaker.state).toBe('open');
  });

  it('a BrokenCircuitError is not retried even when shouldRetry says every error is', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'open-already', failureThreshold: 1, clock });
    await breaker.run(() => Promise.reject(new Error('x'))).catch(() => undefined);
    let asked = 0;
    const call = withSafeAsync(() => 'never runs', {
      breaker,
      retry: {
        ...quickRetry,
        maxAttempts: 3,
        shouldRetry: () => {
          asked++;
          return true;
        },
      },
      clock,
    });
    const run = observe(call());
    await runRetries(clock);
    expect((run.outcome as { reason: unknown }).reason).toBeInstanceOf(BrokenCircuitError);
    expect(asked).toBe(0);
  });
});

describe('withSafeAsync: breaker → attempt timeout', () => {
  it('an attempt cut by retry.attemptTimeout counts as a failure of the breaker', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'slow', failureThreshold: 2, clock });
    let calls = 0;
    const call = withSafeAsync(
      () => {
        calls++;
        return never();
      },
      { breaker, retry: { ...quickRetry, maxAttempts: 5, attemptTimeout: 10 }, clock, name: 'fetchSlow' },
    );
    const run = observe(call());
    await runRetries(clock);
    // Timeout outside the breaker would have looked like an outside cancellation: never counted, 5 attempts.
    expect(calls).toBe(2);
    expect(breaker.state).toBe('open');
    expect(isBrokenCircuitError((run.outcome as { reason: unknown }).reason)).toBe(true);
  });

  it('the attempt’s TimeoutError names the attempt, as retry’s own attemptTimeout does', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'slow', failureThreshold: 5, clock });
    const call = withSafeAsync(() => never(), {
      breaker,
      retry: { ...quickRetry, maxAttempts: 1, attemptTimeout: 10 },
      clock,
      name: 'fetchSlow',
    });
    const run = observe(call());
    await clock.advance(10);
    await flush();
    const error = (run.outcome as { reason: unknown }).reason as TimeoutError;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error.scopeName).toBe('fetchSlow attempt 1');
  });

  it('the call’s own timeout is an outside cancellation to the breaker: not counted', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'outer', failureThreshold: 1, clock });
    const call = withSafeAsync(() => never(), { breaker, timeout: 10, clock, name: 'bounded' });
    const run = observe(call());
    await clock.advance(10);
    await flush();
    expect(((run.outcome as { reason: unknown }).reason as TimeoutError).scopeName).toBe('bounded');
    expect(breaker.state).toBe('closed');
  });
});

describe('withSafeAsync: rate limit → retry', () => {
  it('takes one token per call, however many attempts it makes', async () => {
    const clock = createManualClock();
    const rateLimiter = new RateLimiter({ ratePerSecond: 0.001, burst: 10, clock });
    let calls = 0;
    const call = withSafeAsync(
      () => {
        if (++calls < 3) return Promise.reject(new Error('flaky'));
        return 'ok';
      },
      { rateLimiter, retry: { ...quickRetry, maxAttempts: 3 }, clock },
    );
    const run = observe(call());
    await runRetries(clock);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'ok' });
    expect(calls).toBe(3);
    expect(rateLimiter.available).toBeCloseTo(9, 3);
  });

  it('refuses a call at once, without running it, when its token would come after its deadline', async () => {
    const clock = createManualClock();
    const rateLimiter = new RateLimiter({ ratePerSecond: 1, burst: 1, clock });
    rateLimiter.tryAcquire();
    let calls = 0;
    const call = withSafeAsync(() => calls++, { rateLimiter, timeout: 500, clock });
    const run = observe(call());
    await flush();
    expect((run.outcome as { reason: unknown }).reason).toBeInstanceOf(RateLimitError);
    expect(calls).toBe(0);
  });
});

describe('withSafeAsync: concurrency → rate limit', () => {
  it('a call takes its token only once it holds its concurrency permit', async () => {
    const clock = createManualClock();
    const rateLimiter = new RateLimiter({ ratePerSecond: 0.001, burst: 5, clock });
    const release: (() => void)[] = [];
    const call = withSafeAsync(() => new Promise<void>((resolve) => release.push(resolve)), {
      rateLimiter,
      concurrency: 1,
      clock,
    });
    const first = observe(call());
    const second = observe(call());
    await flush();
    expect(release).toHaveLength(1);
    // Rate limit outside concurrency would have taken the waiting call's token too: 3 left.
    expect(rateLimiter.available).toBeCloseTo(4, 3);
    release[0]?.();
    await flush();
    expect(first.outcome.status).toBe('fulfilled');
    expect(rateLimiter.available).toBeCloseTo(3, 3);
    release[1]?.();
    await flush();
    expect(second.outcome.status).toBe('fulfilled');
  });
});
