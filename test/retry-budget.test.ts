import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { retry } from '../src/retry.js';
import { RetryBudget } from '../src/retry-budget.js';
import { createManualClock, type ManualClock } from '../src/testing/manual-clock.js';
import { observe } from './fixtures/observe.js';

/** Runs `promise` to completion on the manual clock (bounded: fails rather than hangs). */
async function settle<T>(clock: ManualClock, promise: Promise<T>): Promise<void> {
  const run = observe(promise);
  for (let turns = 0; run.outcome.status === 'pending'; turns++) {
    if (turns > 1_000) throw new Error('the retry never settled');
    await clock.flush();
    await clock.runAll();
  }
}

describe('RetryBudget', () => {
  it('starts full and allows retries only while tokens > maxTokens / 2', () => {
    const budget = new RetryBudget();
    expect(budget.snapshot()).toEqual({
      tokens: 10,
      maxTokens: 10,
      tokenRatio: 0.1,
      canRetry: true,
      successes: 0,
      failures: 0,
      throttled: 0,
    });
    for (let i = 0; i < 4; i++) budget.recordFailure();
    expect([budget.tokens, budget.canRetry()]).toEqual([6, true]);
    budget.recordFailure();
    expect([budget.tokens, budget.canRetry()]).toEqual([5, false]); // at the threshold: throttled
    budget.recordSuccess();
    expect([budget.tokens, budget.canRetry()]).toEqual([5.1, true]);
  });

  it('keeps exact decimal accounting, within [0, maxTokens]', () => {
    const budget = new RetryBudget({ maxTokens: 3, tokenRatio: 0.1 });
    for (let i = 0; i < 10; i++) budget.recordFailure();
    expect(budget.tokens).toBe(0);
    for (let i = 0; i < 20; i++) budget.recordSuccess();
    expect(budget.tokens).toBe(2); // 20 × 0.1, not 1.9999999999999998
    for (let i = 0; i < 100; i++) budget.recordSuccess();
    expect(budget.tokens).toBe(3);
    expect(budget.snapshot()).toMatchObject({ successes: 120, failures: 10 });
  });

  it('validates its options at the call site', () => {
    expect(() => new RetryBudget({ maxTokens: 0 })).toThrow(/`maxTokens`.*0/);
    expect(() => new RetryBudget({ maxTokens: Number.POSITIVE_INFINITY })).toThrow(RangeError);
    expect(() => new RetryBudget({ maxTokens: '10' as unknown as number })).toThrow(TypeError);
    expect(() => new RetryBudget({ tokenRatio: 0 })).toThrow(/`tokenRatio`.*0/);
    expect(() => new RetryBudget({ tokenRatio: Number.NaN })).toThrow(RangeError);
    expect(() => new RetryBudget({ ratio: 0.1 } as never)).toThrow(/Unknown option `ratio`/);
  });
});

describe('retry() with a RetryBudget', () => {
  it('keeps total attempts ≤ 1.1 × calls + maxTokens at 100 % failure (first attempts never throttled)', async () => {
    const clock = createManualClock();
    const budget = new RetryBudget({ maxTokens: 10, tokenRatio: 0.1 });
    const calls = 1_000;
    let attempts = 0;
    const down = () => {
      attempts++;
      return Promise.reject(new Error('503'));
    };
    for (let call = 0; call < calls; call++) {
      await settle(clock, retry(down, { clock, budget, maxAttempts: 5, backoff: () => 0 }));
    }
    expect(attempts).toBeLessThanOrEqual(1.1 * calls + 10);
    // Exactly: the first call retries 4 times (tokens 10 → 5), every later call runs once.
    expect(attempts).toBe(calls + 4);
    expect(budget.snapshot()).toMatchObject({ tokens: 0, canRetry: false, failures: calls + 4, throttled: calls - 1 });
  });

  it('bounds retries by tokenRatio per success under any mix of outcomes (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.boolean(), { minLength: 1, maxLength: 400 }),
        fc.integer({ min: 2, max: 6 }),
        async (outcomes, maxAttempts) => {
          const clock = createManualClock();
          const budget = new RetryBudget({ maxTokens: 10, tokenRatio: 0.1 });
          let attempts = 0;
          const fn = () =>
            outcomes[attempts++ % outcomes.length] === true ? Promise.resolve(1) : Promise.reject(new Error('x'));
          const calls = 50;
          for (let call = 0; call < calls; call++) {
            await settle(
              clock,
              retry(fn, { clock, budget, maxAttempts, backoff: () => 0 }).catch(() => 0),
            );
          }
          expect(attempts).toBeLessThanOrEqual(1.1 * calls + 10);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('counts only retryable failures, and a success gives tokens back', async () => {
    const clock = createManualClock();
    const budget = new RetryBudget({ maxTokens: 4 });
    const fatal = new Error('400');
    await settle(
      clock,
      retry(() => Promise.reject(fatal), { clock, budget, shouldRetry: (e) => e !== fatal }).catch(() => 0),
    );
    expect(budget.snapshot()).toMatchObject({ tokens: 4, failures: 0 });
    let n = 0;
    await settle(
      clock,
      retry(() => (++n < 2 ? Promise.reject(new Error('503')) : Promise.resolve(n)), {
        clock,
        budget,
        backoff: () => 0,
      }),
    );
    expect(budget.snapshot()).toMatchObject({ tokens: 3.1, failures: 1, successes: 1 });
  });

  it('does not charge the budget for an outside cancellation', async () => {
    const clock = createManualClock();
    const budget = new RetryBudget();
    const controller = new AbortController();
    const run = retry(
      ({ signal }) =>
        new Promise((_, reject) => {
          signal.addEventListener('abort', () => {
            reject(new Error('aborted'));
          });
        }),
      { clock, budget, signal: controller.signal },
    );
    controller.abort(new Error('caller left'));
    await settle(clock, run);
    expect(budget.snapshot()).toMatchObject({ tokens: 10, failures: 0, successes: 0 });
  });
});
