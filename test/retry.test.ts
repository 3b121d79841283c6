import { describe, expect, it } from 'vitest';
import { backoff } from '../src/backoff.js';
import { TimeoutError } from '../src/errors.js';
import { defaultShouldRetry, retry, type RetryContext, type RetryEvent, type RetryOptions } from '../src/retry.js';
import { RetryBudget } from '../src/retry-budget.js';
import { parseRetryAfter } from '../src/retry-after.js';
import { currentScope, pendingScopes, withTimeout } from '../src/scope.js';
import { safeSleep } from '../src/sleep.js';
import { abortListenerCount } from '../src/testing/leaks.js';
import { createManualClock, type ManualClock } from '../src/testing/manual-clock.js';
import { flush, observe, trackUnhandledRejections, type Outcome } from './fixtures/observe.js';

/** Exact delays: 100, 200, 400… ms. */
const exact = backoff({ initialMs: 100, maxMs: 10_000, jitter: 'none' });

function reasonOf(outcome: Outcome<unknown>): unknown {
  expect(outcome.status).toBe('rejected');
  return (outcome as { reason: unknown }).reason;
}

/** An operation that fails with the given values in turn, then succeeds with 'ok'. */
function failing(...errors: unknown[]): { fn: (context: RetryContext) => Promise<string>; calls: RetryContext[] } {
  const calls: RetryContext[] = [];
  const fn = (context: RetryContext): Promise<string> => {
    calls.push(context);
    const index = calls.length - 1;
    return index < errors.length ? Promise.reject(errors[index]) : Promise.resolve('ok');
  };
  return { fn, calls };
}

/** Lets the loop reach its next wait, then runs every timer until none is left. */
async function runAll(clock: ManualClock): Promise<void> {
  await clock.flush();
  await clock.runAll();
}

/** No timer left, no scope open. */
function clean(clock: ManualClock): void {
  expect(clock.pendingTimers).toBe(0);
  expect(pendingScopes()).toEqual([]);
}

/**
 * Hung upstreams that ignore their signal. A retry cut by a deadline settles
 * without them; `release()` finally rejects them all, so their scopes close
 * (and their late rejections must be absorbed).
 */
function hangs(): { next: <T = never>() => Promise<T>; release: () => Promise<void> } {
  const rejects: ((reason: unknown) => void)[] = [];
  return {
    next: <T>() => new Promise<T>((_, reject) => void rejects.push(reject)),
    release: async () => {
      for (const reject of rejects.splice(0)) reject(new Error('late'));
      await flush();
    },
  };
}

describe('retry()', () => {
  it('opens no scope when nothing could cancel it, and gives attempts a signal that never aborts', async () => {
    const clock = createManualClock();
    const seen: { signal: AbortSignal; scope: unknown }[] = [];
    const { fn } = failing(new Error('once'));
    const run = observe(
      retry(
        (context: RetryContext) => {
          seen.push({ signal: context.signal, scope: currentScope() });
          return fn(context);
        },
        { clock, backoff: { initialMs: 10, jitter: 'none' } },
      ),
    );
    expect(pendingScopes().filter((s) => s.scope.clock === clock)).toEqual([]);
    await clock.advance(10);
    expect(run.outcome.status).toBe('fulfilled');
    expect(seen).toHaveLength(2);
    expect(seen.every(({ signal, scope }) => !signal.aborted && scope === undefined)).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });

  it('returns the first success without waiting, and leaves nothing behind', async () => {
    const clock = createManualClock();
    const { fn, calls } = failing();
    await expect(retry(fn, { clock })).resolves.toBe('ok');
    expect(calls.map((c) => c.attempt)).toEqual([1]);
    expect(calls[0]?.signal.aborted).toBe(false);
    expect(clock.now()).toBe(0);
    clean(clock);
  });

  it('leaves no listener on a long-lived signal after thousands of calls', async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    for (let i = 0; i < 2_000; i++)
      await retry(() => Promise.resolve(i), { clock, signal: controller.signal, attemptTimeout: 1_000 });
    expect(abortListenerCount(controller.signal)).toBe(0);
    clean(clock);
  });

  it('counts attempts from 1 and waits the backoff delay between them', async () => {
    const clock = createManualClock();
    const { fn, calls } = failing(new Error('a'), new Error('b'));
    const events: RetryEvent[] = [];
    const run = observe(retry(fn, { clock, backoff: exact, onRetry: (event) => void events.push(event) }));
    await clock.advance(99);
    expect(calls).toHaveLength(1);
    await clock.advance(1);
    expect(calls).toHaveLength(2);
    await clock.advance(200);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'ok' });
    expect(calls.map((c) => c.attempt)).toEqual([1, 2, 3]);
    expect(events.map(({ attempt, delayMs }) => [attempt, delayMs])).toEqual([
      [1, 100],
      [2, 200],
    ]);
    expect((events[1]?.error as Error).message).toBe('b');
    clean(clock);
  });

  it('rejects with the last attempt’s error itself after maxAttempts (default 3)', async () => {
    const clock = createManualClock();
    const errors = [new Error('1'), new Error('2'), new Error('3'), new Error('4')];
    const { fn, calls } = failing(...errors);
    const run = observe(retry(fn, { clock, backoff: exact }));
    await runAll(clock);
    expect(reasonOf(run.outcome)).toBe(errors[2]);
    expect(calls).toHaveLength(3);
    clean(clock);

    const once = failing(...errors);
    await expect(retry(once.fn, { clock, maxAttempts: 1 })).rejects.toBe(errors[0]);
    expect(once.calls).toHaveLength(1);
  });

  it('retries thrown non-Error values by the same rules and rejects with the value itself', async () => {
    const clock = createManualClock();
    const thrown = ['a string', undefined, { code: 503 }];
    const { fn, calls } = failing(...thrown);
    const seen: unknown[] = [];
    const run = observe(retry(fn, { clock, backoff: exact, shouldRetry: (error) => (seen.push(error), true) }));
    await runAll(clock);
    expect(reasonOf(run.outcome)).toBe(thrown[2]);
    expect(seen).toEqual(thrown);
    expect(calls).toHaveLength(3);

    // A synchronous throw of undefined is an attempt's failure too, not a success.
    let attempts = 0;
    const sync = observe(
      retry(
        () => {
          attempts++;
          throw undefined;
        },
        { clock, backoff: exact },
      ),
    );
    await runAll(clock);
    expect(sync.outcome).toEqual({ status: 'rejected', reason: undefined });
    expect(attempts).toBe(3);
  });

  it('stops when shouldRetry says no, passing it the error and the attempt', async () => {
    const clock = createManualClock();
    const fatal = new Error('400');
    const { fn, calls } = failing(new Error('503'), fatal);
    const asked: [string, number][] = [];
    const run = observe(
      retry(fn, {
        clock,
        backoff: exact,
        maxAttempts: 5,
        shouldRetry: async (error, { attempt }) => {
          asked.push([(error as Error).message, attempt]);
          await Promise.resolve();
          return error !== fatal;
        },
      }),
    );
    await runAll(clock);
    expect(reasonOf(run.outcome)).toBe(fatal);
    expect(calls).toHaveLength(2);
    expect(asked).toEqual([
      ['503', 1],
      ['400', 2],
    ]);
  });

  it('never retries the caller’s abort: rejects at once with its reason (attempts = 1)', async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    const reason = new Error('client went away');
    const calls: RetryContext[] = [];
    const hung = hangs();
    const run = observe(
      retry((context) => (calls.push(context), hung.next()), { clock, signal: controller.signal, maxAttempts: 5 }),
    );
    await clock.advance(50);
    controller.abort(reason);
    await flush();
    expect(reasonOf(run.outcome)).toBe(reason);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.signal.reason).toBe(reason);
    await runAll(clock);
    expect(calls).toHaveLength(1);
    expect(abortListenerCount(controller.signal)).toBe(0);
    expect(pendingScopes().map((s) => [s.name, s.overdue])).toEqual([['retry', true]]); // the hung attempt, reported
    await hung.release();
    expect(calls).toHaveLength(1); // its late failure is not retried
    clean(clock);
  });

  it('does not retry an attempt that fails because the caller aborted, nor start one after', async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    const reason = { why: 'not an Error' };
    let attempts = 0;
    // The attempt honours its signal and rejects with an error of its own: still an outside cancellation.
    const fn = ({ signal }: RetryContext) => {
      attempts++;
      return new Promise((_, reject) => {
        signal.addEventListener('abort', () => {
          reject(new Error('aborted'));
        });
      });
    };
    const run = observe(retry(fn, { clock, signal: controller.signal, maxAttempts: 5 }));
    controller.abort(reason);
    await runAll(clock);
    expect(reasonOf(run.outcome)).toBe(reason);
    expect(attempts).toBe(1);

    const born = observe(retry(fn, { clock, signal: controller.signal }));
    await flush();
    expect(reasonOf(born.outcome)).toBe(reason);
    expect(attempts).toBe(1);
  });

  it('stops waiting between attempts when the caller aborts', async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    const { fn, calls } = failing(new Error('503'));
    const run = observe(retry(fn, { clock, backoff: exact, signal: controller.signal }));
    await clock.advance(50);
    controller.abort('stop');
    await flush();
    expect(reasonOf(run.outcome)).toBe('stop');
    await runAll(clock);
    expect(calls).toHaveLength(1);
    clean(clock);
  });

  it('cuts an attempt at attemptTimeout, aborting its signal, and retries with a fresh one', async () => {
    const clock = createManualClock();
    const contexts: RetryContext[] = [];
    const signals: AbortSignal[] = [];
    const events: RetryEvent[] = [];
    const hung = hangs();
    const fn = (context: RetryContext) => {
      contexts.push(context);
      signals.push(context.signal);
      expect(context.signal.aborted).toBe(false); // read it, ignore it: the hung upstream
      return context.attempt === 1 ? hung.next<string>() : Promise.resolve('second time lucky');
    };
    const run = observe(
      retry(fn, { clock, attemptTimeout: 100, backoff: exact, name: 'fetch', onRetry: (e) => void events.push(e) }),
    );
    await clock.advance(100);
    const first = signals[0];
    expect(first?.aborted).toBe(true);
    expect(first?.reason).toBeInstanceOf(TimeoutError);
    expect((first?.reason as TimeoutError).scopeName).toBe('fetch attempt 1');
    expect(events[0]?.error).toBe(first?.reason);
    expect(run.outcome.status).toBe('pending');
    await clock.advance(100);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'second time lucky' });
    expect(signals[1]?.aborted).toBe(false);
    expect(signals[1]).not.toBe(first);
    await hung.release();
    expect(contexts).toHaveLength(2);
    clean(clock);
  });

  it('clamps attemptTimeout to what remains, and times out with the last error as cause', async () => {
    const clock = createManualClock();
    const contexts: RetryContext[] = [];
    const hung = hangs();
    const fn = (context: RetryContext) => (contexts.push(context), hung.next());
    const run = observe(
      retry(fn, { clock, timeout: 150, attemptTimeout: 100, backoff: () => 10, name: 'op', maxAttempts: 9 }),
    );
    await clock.advance(110); // attempt 1 cut at 100, attempt 2 starts at 110 with 40 ms left
    expect(contexts).toHaveLength(2);
    await clock.advance(40);
    const error = reasonOf(run.outcome) as TimeoutError;
    expect(error).toBeInstanceOf(TimeoutError);
    expect([error.scopeName, error.timeoutMs]).toEqual(['op', 150]);
    expect(error.cause).toBe(contexts[0]?.signal.reason); // attempt 1's own TimeoutError
    expect((contexts[1]?.signal.reason as TimeoutError).scopeName).toBe('op'); // attempt 2 was cut by the whole timeout
    await hung.release();
    expect(contexts).toHaveLength(2);
    clean(clock);
  });

  it('times out with the scope’s own TimeoutError when no attempt has failed yet', async () => {
    const clock = createManualClock();
    let signal: AbortSignal | undefined;
    const hung = hangs();
    const run = observe(retry((context) => ((signal = context.signal), hung.next()), { clock, timeout: 100 }));
    await clock.advance(100);
    const error = reasonOf(run.outcome) as TimeoutError;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toBe(signal?.reason);
    expect(error.cause).toBeUndefined();
    await hung.release();
    clean(clock);
  });

  it('gives up at once when the next delay would pass the deadline', async () => {
    const clock = createManualClock();
    const errors = [new Error('1'), new Error('2'), new Error('3')];
    const { fn, calls } = failing(...errors);
    const events: RetryEvent[] = [];
    const run = observe(
      retry(fn, {
        clock,
        timeout: 500,
        backoff: backoff({ initialMs: 200, jitter: 'none' }),
        maxAttempts: 9,
        name: 'op',
        onRetry: (event) => void events.push(event),
      }),
    );
    await clock.advance(200); // attempt 2 fails at 200; the next delay (400) would end at 600 > 500
    const error = reasonOf(run.outcome) as TimeoutError;
    expect(clock.now()).toBe(200);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error.scopeName).toBe('op');
    expect(error.cause).toBe(errors[1]);
    expect(error.message).toMatch(
      /gave up after 2 attempt\(s\): waiting 400 ms would pass the deadline of scope "op" \(300 ms left\)/,
    );
    expect(calls).toHaveLength(2);
    expect(events).toHaveLength(1);
    clean(clock);
  });

  it('is bounded by the ambient deadline: never retries it, and gives up before crossing it', async () => {
    const clock = createManualClock();
    // Hung attempts: the enclosing scope's TimeoutError ends the loop (===), not retried.
    let attempts = 0;
    let inside: unknown;
    const hung = hangs();
    const outer = observe(
      withTimeout(
        250,
        async () => {
          try {
            await retry(() => (attempts++, hung.next()), { maxAttempts: Number.POSITIVE_INFINITY });
          } catch (error) {
            inside = error;
          }
        },
        { clock, name: 'request' },
      ),
    );
    await clock.advance(250);
    const expired = reasonOf(outer.outcome) as TimeoutError;
    expect(expired.scopeName).toBe('request');
    expect(inside).toBe(expired);
    await hung.release();
    expect(attempts).toBe(1);

    // Failing attempts: gives up when the delay would cross the request's deadline.
    const { fn, calls } = failing(new Error('1'), new Error('2'), new Error('3'));
    const gaveUp = observe(
      withTimeout(250, () => retry(fn, { backoff: exact, maxAttempts: 9 }), { clock, name: 'request' }),
    );
    await clock.advance(100);
    const error = reasonOf(gaveUp.outcome) as TimeoutError;
    expect(error.scopeName).toBe('request');
    expect((error.cause as Error).message).toBe('2');
    expect(calls).toHaveLength(2);
    clean(clock);
  });

  it('honours Retry-After instead of the backoff, past maxMs when no deadline bounds it', async () => {
    const clock = createManualClock();
    const withHeader = (header: string) => Object.assign(new Error('429'), { header });
    const { fn } = failing(withHeader('5'), withHeader('120'), new Error('no header'));
    const delays: number[] = [];
    const run = observe(
      retry(fn, {
        clock,
        maxAttempts: 4,
        backoff: backoff({ initialMs: 100, maxMs: 10_000, jitter: 'none' }),
        retryAfter: (error) => parseRetryAfter((error as { header?: string }).header),
        onRetry: ({ delayMs }) => void delays.push(delayMs),
      }),
    );
    await runAll(clock);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'ok' });
    // 120 s is more than maxMs (10 s): the server asked for it, and nothing bounds the retry.
    expect(delays).toEqual([5_000, 120_000, 400]);
    expect(clock.now()).toBe(125_400);
  });

  it('gives up at once when Retry-After asks for more than the deadline allows', async () => {
    const clock = createManualClock();
    const error = new Error('503');
    const run = observe(retry(() => Promise.reject(error), { clock, timeout: 3_000, retryAfter: () => 5_000 }));
    await flush();
    const reason = reasonOf(run.outcome) as TimeoutError;
    expect(reason).toBeInstanceOf(TimeoutError);
    expect(reason.cause).toBe(error);
    expect(clock.now()).toBe(0);
    clean(clock);
  });

  it('feeds the previous delay to the backoff function', async () => {
    const clock = createManualClock();
    const seen: [number, number | undefined][] = [];
    const { fn } = failing(new Error('1'), new Error('2'));
    const run = observe(
      retry(fn, { clock, backoff: (attempt, previousMs) => (seen.push([attempt, previousMs]), attempt * 7) }),
    );
    await runAll(clock);
    expect(run.outcome.status).toBe('fulfilled');
    expect(seen).toEqual([
      [1, undefined],
      [2, 7],
    ]);
  });

  it('runs each attempt in the retry’s scope, so nested calls see its deadline', async () => {
    const clock = createManualClock();
    const names: (string | undefined)[] = [];
    const run = observe(
      retry(
        async () => {
          names.push(currentScope()?.name);
          await safeSleep(1_000); // stops at the retry's deadline
          return 'late';
        },
        { clock, timeout: 50, name: 'lookup', maxAttempts: 1 },
      ),
    );
    await clock.advance(50);
    expect((reasonOf(run.outcome) as TimeoutError).scopeName).toBe('lookup');
    expect(names).toEqual(['lookup']);
    clean(clock);
  });

  it("rejects with what a hook threw, or a TypeError (the attempt's error as cause) for a bad delay, without an unhandled rejection", async () => {
    const clock = createManualClock();
    const tracker = trackUnhandledRejections();
    const hookError = new Error('hook');
    const cases = [
      {
        shouldRetry: () => {
          throw hookError;
        },
      },
      { onRetry: () => Promise.reject(hookError) },
      {
        retryAfter: () => {
          throw hookError;
        },
      },
    ];
    for (const options of cases) {
      const run = observe(retry(() => Promise.reject(new Error('x')), { clock, ...options }));
      await runAll(clock);
      expect(reasonOf(run.outcome)).toBe(hookError);
    }
    const badDelays: RetryOptions[] = [
      { backoff: () => Number.NaN },
      { backoff: () => -1 },
      { retryAfter: () => -5 },
      { retryAfter: () => Number.NaN },
      { retryAfter: () => '5' as never },
    ];
    for (const options of badDelays) {
      const attemptError = new Error('x');
      const bad = observe(retry(() => Promise.reject(attemptError), { clock, ...options }));
      await runAll(clock);
      const reason = reasonOf(bad.outcome) as TypeError;
      expect(reason).toBeInstanceOf(TypeError);
      expect(reason.message).toMatch(/`(backoff\(attempt\)|retryAfter\(error\))` to return a non-negative number/);
      expect(reason.cause).toBe(attemptError);
    }
    await flush();
    tracker.stop();
    expect(tracker.reasons).toEqual([]);
    clean(clock);
  });

  it('validates its arguments synchronously', () => {
    const ok = () => 1;
    expect(() => retry('nope' as never)).toThrow(/`fn`/);
    expect(() => retry(ok, { maxAttempts: 0 })).toThrow(/`maxAttempts`.*0/);
    expect(() => retry(ok, { maxAttempts: 2.5 })).toThrow(RangeError);
    expect(() => retry(ok, { maxAttempts: '3' as never })).toThrow(TypeError);
    expect(() => retry(ok, { timeout: -1 })).toThrow(/`timeout`/);
    expect(() => retry(ok, { attemptTimeout: Number.NaN })).toThrow(/`attemptTimeout`/);
    expect(() => retry(ok, { backoff: { initialMs: -5 } })).toThrow(/`initialMs`/);
    expect(() => retry(ok, { shouldRetry: true as never })).toThrow(/`shouldRetry`/);
    expect(() => retry(ok, { budget: {} as never })).toThrow(/`budget`/);
    expect(() => retry(ok, { signal: {} as never })).toThrow(/`signal`/);
    expect(() => retry(ok, { retries: 3 } as never)).toThrow(/Unknown option `retries`/);
  });
});

describe('retry(): Retry-After past maxMs', () => {
  it('honours a 20 s Retry-After with maxMs 5 s while it fits the deadline, and waits exactly that long', async () => {
    const clock = createManualClock();
    const waits: number[] = [];
    const { fn, calls } = failing(Object.assign(new Error('429'), { header: '20' }));
    const run = observe(
      retry(fn, {
        clock,
        timeout: 30_000,
        backoff: { initialMs: 100, maxMs: 5_000, jitter: 'none' },
        retryAfter: (error) => parseRetryAfter((error as { header?: string }).header),
        onRetry: ({ delayMs }) => void waits.push(delayMs),
      }),
    );
    await clock.advance(19_999);
    expect(run.outcome.status).toBe('pending');
    expect(calls).toHaveLength(1);
    await clock.advance(1);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'ok' });
    expect(waits).toEqual([20_000]);
    clean(clock);
  });

  it('gives up at once on a 3600 s Retry-After that does not fit the deadline (TimeoutError, the error as cause)', async () => {
    const clock = createManualClock();
    const error = Object.assign(new Error('503'), { header: '3600' });
    const run = observe(
      retry(() => Promise.reject(error), {
        clock,
        timeout: 60_000,
        backoff: { maxMs: 5_000 },
        retryAfter: (e) => parseRetryAfter((e as { header?: string }).header),
      }),
    );
    await flush();
    const reason = reasonOf(run.outcome) as TimeoutError;
    expect(reason).toBeInstanceOf(TimeoutError);
    expect(reason.cause).toBe(error);
    expect(reason.message).toMatch(/3600000 ms/);
    expect(clock.now()).toBe(0);
    clean(clock);
  });

  it('rejects an infinite retryAfter with a TypeError (the attempt’s error as cause)', async () => {
    const clock = createManualClock();
    const attemptError = new Error('x');
    const run = observe(
      retry(() => Promise.reject(attemptError), { clock, retryAfter: () => Number.POSITIVE_INFINITY }),
    );
    await runAll(clock);
    const reason = reasonOf(run.outcome) as TypeError;
    expect(reason).toBeInstanceOf(TypeError);
    expect(reason.message).toMatch(/`retryAfter\(error\)`.*Infinity/);
    expect(reason.cause).toBe(attemptError);
  });
});

/** A minimal HTTP response: a status and a Retry-After header. */
class FakeResponse {
  constructor(
    readonly status: number,
    readonly retryAfter: string | null = null,
  ) {}
}

describe('retry(): shouldRetryResult', () => {
  it('retries a result the predicate rejects, with backoff, and returns the first accepted one', async () => {
    const clock = createManualClock();
    const statuses = [503, 503, 200];
    const events: RetryEvent[] = [];
    const run = observe(
      retry(({ attempt }) => Promise.resolve(new FakeResponse(statuses[attempt - 1] ?? 200)), {
        clock,
        maxAttempts: 5,
        backoff: exact,
        shouldRetryResult: (response) => response.status >= 500,
        onRetry: (event) => void events.push(event),
      }),
    );
    await runAll(clock);
    expect(run.outcome.status).toBe('fulfilled');
    expect((run.outcome as { value: FakeResponse }).value.status).toBe(200);
    expect(events.map(({ kind, attempt, delayMs, error }) => ({ kind, attempt, delayMs, error }))).toEqual([
      { kind: 'result', attempt: 1, delayMs: 100, error: undefined },
      { kind: 'result', attempt: 2, delayMs: 200, error: undefined },
    ]);
    expect((events[0]?.value as FakeResponse).status).toBe(503);
    expect(clock.now()).toBe(300);
    clean(clock);
  });

  it('RETURNS the last value when attempts run out (never throws it)', async () => {
    const clock = createManualClock();
    const responses: FakeResponse[] = [];
    const run = observe(
      retry(
        () => {
          const response = new FakeResponse(503);
          responses.push(response);
          return response;
        },
        { clock, maxAttempts: 3, backoff: exact, shouldRetryResult: (r) => r.status === 503 },
      ),
    );
    await runAll(clock);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: responses[2] });
    expect(responses).toHaveLength(3);
    clean(clock);
  });

  it('returns the last value at once when the next wait would pass the deadline', async () => {
    const clock = createManualClock();
    let calls = 0;
    const run = observe(
      retry(() => (calls++, new FakeResponse(503)), {
        clock,
        timeout: 150,
        maxAttempts: 10,
        backoff: exact,
        shouldRetryResult: () => true,
      }),
    );
    await clock.advance(100); // attempt 2 after 100 ms; 200 ms more would pass the deadline
    await flush();
    expect(run.outcome.status).toBe('fulfilled');
    expect(calls).toBe(2);
    expect(clock.now()).toBe(100);
    clean(clock);
  });

  it('honours a Response’s Retry-After through retryAfter(value, { kind: "result" }), past maxMs', async () => {
    const clock = createManualClock();
    const seen: { kind: string; attempt: number }[] = [];
    const queue = [new FakeResponse(429, '20'), new FakeResponse(200)];
    const run = observe(
      retry(() => queue.shift() ?? new FakeResponse(200), {
        clock,
        timeout: 60_000,
        backoff: { maxMs: 5_000 },
        shouldRetryResult: (r) => r.status === 429 || r.status === 503,
        retryAfter: (outcome, context) => {
          seen.push({ kind: context.kind, attempt: context.attempt });
          return outcome instanceof FakeResponse ? parseRetryAfter(outcome.retryAfter) : undefined;
        },
      }),
    );
    await clock.advance(19_999);
    expect(run.outcome.status).toBe('pending');
    await clock.advance(1);
    expect((run.outcome as { value: FakeResponse }).value.status).toBe(200);
    expect(seen).toEqual([{ kind: 'result', attempt: 1 }]);
    clean(clock);
  });

  it('mixes failures and retried results; an awaited predicate is bounded by the deadline', async () => {
    const clock = createManualClock();
    const outcomes: (() => Promise<FakeResponse>)[] = [
      () => Promise.reject(new Error('ECONNRESET')),
      () => Promise.resolve(new FakeResponse(503)),
      () => Promise.resolve(new FakeResponse(200)),
    ];
    const run = observe(
      retry(({ attempt }) => (outcomes[attempt - 1] as () => Promise<FakeResponse>)(), {
        clock,
        maxAttempts: 3,
        backoff: exact,
        shouldRetryResult: (r) => Promise.resolve(r.status === 503),
      }),
    );
    await runAll(clock);
    expect((run.outcome as { value: FakeResponse }).value.status).toBe(200);

    const hanging = observe(
      retry(() => new FakeResponse(503), {
        clock,
        timeout: 50,
        name: 'judge',
        shouldRetryResult: () => new Promise<boolean>(() => undefined),
      }),
    );
    await clock.advance(50);
    expect((reasonOf(hanging.outcome) as TimeoutError).scopeName).toBe('judge');
    clean(clock);
  });

  it('counts retried results against the budget, and returns the value when it refuses', async () => {
    const budget = new RetryBudget({ maxTokens: 2, tokenRatio: 0.1 });
    let calls = 0;
    const value = await retry(() => (calls++, new FakeResponse(503)), {
      budget,
      maxAttempts: 10,
      backoff: () => 0,
      shouldRetryResult: () => true,
    });
    expect(value.status).toBe(503);
    expect(calls).toBeLessThan(10);
    expect(budget.snapshot().throttled).toBe(1);
  });

  it('never retries the caller’s abort on the result path; a throwing predicate rejects with its error', async () => {
    const controller = new AbortController();
    const reason = new Error('caller gone');
    let calls = 0;
    const run = observe(
      retry(
        () => {
          calls++;
          controller.abort(reason);
          return Promise.resolve(new FakeResponse(503));
        },
        { signal: controller.signal, shouldRetryResult: () => true, backoff: () => 0 },
      ),
    );
    await flush();
    expect(reasonOf(run.outcome)).toBe(reason);
    expect(calls).toBe(1);
    expect(abortListenerCount(controller.signal)).toBe(0);

    const thrown = new Error('predicate');
    const bad = observe(
      retry(() => 1, {
        shouldRetryResult: () => {
          throw thrown;
        },
      }),
    );
    await flush();
    expect(reasonOf(bad.outcome)).toBe(thrown);
  });

  it('validates shouldRetryResult synchronously', () => {
    expect(() => retry(() => 1, { shouldRetryResult: 'yes' as never })).toThrow(/`shouldRetryResult`.*"yes"/);
  });
});

describe('defaultShouldRetry', () => {
  it('retries every error but an abort; the default of retry()', async () => {
    expect(defaultShouldRetry(new Error('503'), { attempt: 1 })).toBe(true);
    expect(defaultShouldRetry('a string', { attempt: 1 })).toBe(true);
    expect(defaultShouldRetry(new TimeoutError(), { attempt: 1 })).toBe(true);
    expect(defaultShouldRetry(new DOMException('x', 'AbortError'), { attempt: 1 })).toBe(false);
    expect(defaultShouldRetry(Object.assign(new Error('x'), { name: 'AbortError' }), { attempt: 1 })).toBe(false);
    let calls = 0;
    const abort = new DOMException('stopped inside', 'AbortError');
    const error = await retry(
      () => {
        calls++;
        throw abort;
      },
      { backoff: () => 0 },
    ).catch((e: unknown) => e);
    expect(error).toBe(abort);
    expect(calls).toBe(1);
  });
});
