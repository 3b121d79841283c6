/**
 * The portable suite: the library's core behaviour, checked through the
 * packed package on every runtime it claims (Node 20/22/24, Bun, Deno and
 * headless Chromium). It uses no test framework and nothing but the language,
 * timers and `AbortController`, so the same file runs everywhere; the
 * runtime-specific parts (ambient scopes, diagnostics channels, the
 * event-loop sampler, `loopsafe/testing`) are checked against what the README
 * documents for each runtime.
 *
 * Real time, short waits: every wait is a few milliseconds, assertions allow
 * timers to fire ~1 ms early, and every test is bounded (`TEST_TIMEOUT_MS`), so
 * a broken build fails here instead of hanging.
 *
 * Run by `scripts/test-runtimes.ts` (`npm run test:runtimes`).
 */
import {
  backoff,
  BrokenCircuitError,
  CircuitBreaker,
  currentScope,
  GatherError,
  isAbortError,
  isTimeoutError,
  monitorEventLoop,
  Mutex,
  parseRetryAfter,
  RateLimitError,
  RateLimiter,
  retry,
  RetryBudget,
  safeGather,
  safeGatherSettled,
  safeSleep,
  safeWaitFor,
  Semaphore,
  TimeoutError,
  timeoutContext,
  withSafeAsync,
  withTimeout,
  yieldToEventLoop,
} from 'loopsafe';
import type * as Testing from 'loopsafe/testing';

/** Where the suite runs, and what that runtime is documented to offer. */
export interface PortableEnvironment {
  /** `node`, `bun`, `deno` or `browser`. */
  readonly runtime: 'node' | 'bun' | 'deno' | 'browser';
  /** `loopsafe/testing`, on server runtimes (it needs `node:` modules). */
  readonly testing?: typeof Testing | undefined;
  /** `diagnostics_channel.subscribe`/`unsubscribe`, on server runtimes. */
  readonly channels?:
    | {
        subscribe(name: string, listener: (message: unknown) => void): void;
        unsubscribe(name: string, listener: (message: unknown) => void): void;
      }
    | undefined;
  /**
   * The `loopsafe:scope` TracingChannel, on server runtimes: binds an
   * AsyncLocalStorage to its `start` channel (`transform` makes the store
   * from the trace context), reads that store, subscribes to `asyncEnd`.
   */
  readonly tracing?:
    | {
        bindStore(transform: (context: unknown) => unknown): void;
        unbindStore(): void;
        store(): unknown;
        onAsyncEnd(listener: ((context: unknown) => void) | undefined): void;
      }
    | undefined;
}

/** One test's outcome. */
export interface PortableResult {
  readonly name: string;
  readonly ok: boolean;
  readonly ms: number;
  readonly error?: string;
}

const TEST_TIMEOUT_MS = 5_000;
/** Timers may fire up to ~1 ms early (they are scheduled in whole milliseconds). */
const EARLY_MS = 1.5;

class AssertionFailed extends Error {
  override readonly name = 'AssertionFailed';
}

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new AssertionFailed(message);
}

function equal(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  check(a === e, `${what}: expected ${e}, got ${a}`);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new AssertionFailed('expected a rejection, got a fulfilment');
}

/** Counts the abort listeners a signal holds, portably: wraps its own add/remove methods. */
function countedSignal(): { controller: AbortController; listeners: () => number } {
  const controller = new AbortController();
  const { signal } = controller;
  const live = new Set<unknown>();
  type Method = (type: string, listener: unknown, options?: unknown) => void;
  const add = signal.addEventListener.bind(signal) as Method;
  const remove = signal.removeEventListener.bind(signal) as Method;
  const counting =
    (method: Method, update: (listener: unknown) => void): Method =>
    (type, listener, options) => {
      if (type === 'abort') update(listener);
      method(type, listener, options);
    };
  Object.assign(signal, {
    addEventListener: counting(add, (listener) => live.add(listener)),
    removeEventListener: counting(remove, (listener) => live.delete(listener)),
  });
  return { controller, listeners: () => live.size };
}

const never = (): Promise<never> => new Promise<never>(() => undefined);

/** Holds the event loop for `ms` of real time, so timers fall due without running. */
function block(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy
  }
}
const elapsedSince = (start: number): number => performance.now() - start;

type Test = readonly [name: string, body: () => Promise<void> | void];

function tests(env: PortableEnvironment): Test[] {
  const server = env.runtime !== 'browser';
  const list: Test[] = [
    [
      'safeSleep waits at least its delay',
      async () => {
        const start = performance.now();
        await safeSleep(20);
        check(elapsedSince(start) >= 20 - EARLY_MS, `woke after ${elapsedSince(start).toFixed(2)} ms`);
      },
    ],
    [
      'safeSleep(0) wakes after a 0 ms timer set before it, and before one set after it',
      async () => {
        const order: string[] = [];
        const before = new Promise<void>((resolve) => {
          setTimeout(() => {
            order.push('timer before');
            resolve();
          }, 0);
        });
        const sleeping = safeSleep(0).then(() => order.push('safeSleep(0)'));
        const after = new Promise<void>((resolve) => {
          setTimeout(() => {
            order.push('timer after');
            resolve();
          }, 0);
        });
        await Promise.all([before, sleeping, after]);
        equal(order, ['timer before', 'safeSleep(0)', 'timer after'], 'order');
      },
    ],
    [
      'safeSleep rejects with the signal reason at once and leaves no listener',
      async () => {
        const { controller, listeners } = countedSignal();
        const sleeping = safeSleep(10_000, { signal: controller.signal });
        check(listeners() === 1, `listeners while sleeping: ${String(listeners())}`);
        const reason = new Error('stop');
        const start = performance.now();
        controller.abort(reason);
        check((await rejection(sleeping)) === reason, 'rejected with the abort reason');
        check(elapsedSince(start) < 100, 'rejected promptly');
        equal(listeners(), 0, 'listeners after abort');
        const counted = countedSignal();
        await safeSleep(1, { signal: counted.controller.signal });
        equal(counted.listeners(), 0, 'listeners after a completed sleep');
      },
    ],
    [
      'safeSleep rejects bad input synchronously with a TypeError or RangeError',
      () => {
        let thrown: unknown;
        try {
          void safeSleep(-1);
        } catch (error) {
          thrown = error;
        }
        check(thrown instanceof RangeError || thrown instanceof TypeError, `got ${String(thrown)}`);
      },
    ],
    [
      'safeWaitFor times out a promise that never settles with a TimeoutError',
      async () => {
        const start = performance.now();
        const error = await rejection(safeWaitFor(never(), { timeout: 15, name: 'stuck' }));
        check(error instanceof TimeoutError && isTimeoutError(error), `got ${String(error)}`);
        equal([error.scopeName, error.timeoutMs], ['stuck', 15], 'TimeoutError fields');
        check(elapsedSince(start) >= 15 - EARLY_MS, 'not before the timeout');
      },
    ],
    [
      'safeWaitFor hands its function a signal that aborts at the timeout',
      async () => {
        let seen: AbortSignal | undefined;
        const error = await rejection(
          safeWaitFor((signal) => {
            seen = signal;
            return never();
          }, 10),
        );
        check(isTimeoutError(error), 'TimeoutError');
        check(seen?.aborted === true && seen.reason === error, 'the task signal aborted with the same error');
      },
    ],
    [
      'safeWaitFor returns the fallback instead of throwing, and the value when in time',
      async () => {
        equal(await safeWaitFor(never(), { timeout: 5, fallback: () => 'cached' }), 'cached', 'fallback');
        equal(await safeWaitFor(Promise.resolve(42), 1_000), 42, 'value');
      },
    ],
    [
      'safeWaitFor stops on an outside signal and releases it',
      async () => {
        const { controller, listeners } = countedSignal();
        const waiting = safeWaitFor(never(), { timeout: 10_000, signal: controller.signal });
        controller.abort();
        check(isAbortError(await rejection(waiting)), 'AbortError');
        equal(listeners(), 0, 'listeners');
      },
    ],
    [
      'withTimeout aborts its scope signal at the deadline and rejects with it',
      async () => {
        let scopeSignal: AbortSignal | undefined;
        const error = await rejection(
          withTimeout(
            10,
            (scope) => {
              scopeSignal = scope.signal;
              return safeSleep(10_000, { signal: scope.signal });
            },
            { name: 'job' },
          ),
        );
        check(error instanceof TimeoutError && error.scopeName === 'job', `got ${String(error)}`);
        check(scopeSignal?.aborted === true, 'scope signal aborted');
      },
    ],
    [
      'scopes nest through an explicit signal on every runtime',
      async () => {
        const outer = new AbortController();
        const result = withTimeout(10_000, (scope) => safeSleep(10_000, { signal: scope.signal }), {
          signal: outer.signal,
        });
        outer.abort(new Error('outer gone'));
        const error = await rejection(result);
        check(error instanceof Error && error.message === 'outer gone', `got ${String(error)}`);
      },
    ],
    [
      'timeoutContext bounds work in a using-style block and disposes cleanly',
      async () => {
        const context = timeoutContext(10);
        try {
          const error = await rejection(safeSleep(10_000, { signal: context.signal }));
          check(isTimeoutError(error), 'TimeoutError');
          check(context.expired, 'expired');
        } finally {
          context[Symbol.dispose]();
        }
      },
    ],
    [
      'safeGather keeps input order, bounds concurrency and fails fast',
      async () => {
        let running = 0;
        let peak = 0;
        const task = (value: number) => async (signal: AbortSignal) => {
          running++;
          peak = Math.max(peak, running);
          await safeSleep(2, { signal });
          running--;
          return value;
        };
        equal(await safeGather([1, 2, 3, 4, 5, 6].map(task), { concurrency: 2 }), [1, 2, 3, 4, 5, 6], 'results');
        equal(peak, 2, 'peak concurrency');
        const siblings: AbortSignal[] = [];
        const boom = new Error('boom');
        const error = await rejection(
          safeGather([
            (signal) => {
              siblings.push(signal);
              return safeSleep(10_000, { signal });
            },
            async () => {
              await safeSleep(1);
              throw boom;
            },
          ]),
        );
        check(error === boom || (error instanceof GatherError && error.errors.includes(boom)), `got ${String(error)}`);
        check(siblings[0]?.aborted === true, 'the running sibling was aborted');
      },
    ],
    [
      'safeGatherSettled reports each outcome',
      async () => {
        const settled = await safeGatherSettled([() => 1, () => Promise.reject(new Error('no'))]);
        equal(
          settled.map((s) => s.status),
          ['fulfilled', 'rejected'],
          'statuses',
        );
      },
    ],
    [
      'retry retries with backoff until success, and gives up after maxAttempts',
      async () => {
        let calls = 0;
        const value = await retry(
          ({ attempt }) => {
            calls++;
            if (attempt < 3) throw new Error(`fail ${String(attempt)}`);
            return 'ok';
          },
          { maxAttempts: 5, backoff: { initialMs: 1, maxMs: 2 } },
        );
        equal([value, calls], ['ok', 3], 'value and calls');
        const error = await rejection(
          retry(() => Promise.reject(new Error('always')), { maxAttempts: 2, backoff: { initialMs: 1 } }),
        );
        check(error instanceof Error && error.message === 'always', `got ${String(error)}`);
      },
    ],
    [
      'retry stops waiting the moment its signal aborts',
      async () => {
        const controller = new AbortController();
        const start = performance.now();
        const retrying = retry(() => Promise.reject(new Error('down')), {
          maxAttempts: 10,
          backoff: { initialMs: 5_000 },
          signal: controller.signal,
        });
        await safeSleep(5);
        controller.abort();
        check(isAbortError(await rejection(retrying)), 'AbortError');
        check(elapsedSince(start) < 1_000, 'did not sit out the backoff');
      },
    ],
    [
      'backoff grows, caps and jitters as configured',
      () => {
        const delays = backoff({ initialMs: 100, factor: 2, maxMs: 500, jitter: 'none' });
        equal(
          [1, 2, 3, 4, 5].map((n) => delays(n)),
          [100, 200, 400, 500, 500],
          'delays',
        );
        const full = backoff({ initialMs: 100, jitter: 'full', random: () => 0.5 });
        equal(full(2), 100, 'full jitter at random 0.5');
      },
    ],
    [
      'RetryBudget and parseRetryAfter',
      () => {
        const budget = new RetryBudget({ maxTokens: 4, tokenRatio: 0.5 });
        const allowed: boolean[] = [];
        for (let i = 0; i < 3; i++) {
          budget.recordFailure();
          allowed.push(budget.canRetry());
        }
        equal(allowed, [true, false, false], 'retries allowed while more than half the tokens are left');
        budget.recordSuccess();
        budget.recordSuccess();
        equal([budget.tokens, budget.canRetry()], [2, false], 'successes refill the bucket');
        equal(parseRetryAfter('120'), 120_000, 'delta seconds');
        equal(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', Date.UTC(1994, 10, 6, 8, 49, 30)), 7_000, 'HTTP-date');
      },
    ],
    [
      'Semaphore grants FIFO, times out waiters and drops aborted ones',
      async () => {
        const semaphore = new Semaphore(1);
        const first = await semaphore.acquire();
        const error = await rejection(semaphore.acquire({ timeout: 5 }));
        check(isTimeoutError(error), 'a waiter timed out');
        const controller = new AbortController();
        const aborted = semaphore.acquire({ signal: controller.signal });
        equal(semaphore.waiting, 1, 'waiting');
        controller.abort();
        check(isAbortError(await rejection(aborted)), 'AbortError');
        equal(semaphore.waiting, 0, 'aborted waiter removed');
        const next = semaphore.acquire();
        first.release();
        (await next).release();
        equal(semaphore.available, 1, 'permit returned');
      },
    ],
    [
      'Mutex serialises critical sections',
      async () => {
        const mutex = new Mutex();
        const order: string[] = [];
        const section = async (name: string): Promise<void> => {
          const permit = await mutex.acquire();
          try {
            order.push(`${name}+`);
            await safeSleep(2);
            order.push(`${name}-`);
          } finally {
            permit.release();
          }
        };
        await Promise.all([section('a'), section('b')]);
        equal(order, ['a+', 'a-', 'b+', 'b-'], 'order');
      },
    ],
    [
      'withSafeAsync bounds a function with a timeout',
      async () => {
        const slow = withSafeAsync((ms: number) => safeSleep(ms), { timeout: 10, name: 'slow' });
        const error = await rejection(slow(10_000));
        check(error instanceof TimeoutError && error.scopeName === 'slow', `got ${String(error)}`);
        await slow(1);
      },
    ],
    [
      'CircuitBreaker opens, turns calls away, and closes after a successful trial',
      async () => {
        const breaker = new CircuitBreaker({ name: 'upstream', failureThreshold: 2, openMs: 15 });
        const fail = (): Promise<never> => Promise.reject(new Error('down'));
        await rejection(breaker.run(fail));
        await rejection(breaker.run(fail));
        equal(breaker.state, 'open', 'state');
        let ran = false;
        const error = await rejection(
          breaker.run(() => {
            ran = true;
          }),
        );
        check(error instanceof BrokenCircuitError && error.breakerName === 'upstream', `got ${String(error)}`);
        check(!ran, 'the work did not run while open');
        await safeSleep(20);
        equal(breaker.state, 'half-open', 'state after openMs');
        equal(await breaker.run(() => 'ok'), 'ok', 'trial');
        equal(breaker.state, 'closed', 'state after the trial');
        const { controller, listeners } = countedSignal();
        const cancelled = breaker.run(() => never(), { signal: controller.signal });
        const reason = new Error('caller gone');
        controller.abort(reason);
        check((await rejection(cancelled)) === reason, 'rejected with the abort reason');
        check(listeners() === 0, `listeners left: ${String(listeners())}`);
        equal(breaker.state, 'closed', 'a cancellation does not count');
      },
    ],
    [
      'RateLimiter waits for a token, and refuses at once a wait past the deadline',
      async () => {
        const limiter = new RateLimiter({ ratePerSecond: 100, burst: 1 });
        check(limiter.tryAcquire() && !limiter.tryAcquire(), 'one token');
        const start = performance.now();
        await limiter.acquire();
        check(elapsedSince(start) >= 10 - EARLY_MS, `waited ${elapsedSince(start).toFixed(2)} ms`);
        const refused = await rejection(withTimeout(50, () => limiter.acquire({ cost: 1, timeout: 5 })));
        check(refused instanceof RateLimitError && refused.retryAfterMs > 5, `got ${String(refused)}`);
        check(elapsedSince(start) < 40, 'refused at once');
      },
    ],
    [
      'yieldToEventLoop lets a due timer run first',
      async () => {
        let ran = false;
        setTimeout(() => {
          ran = true;
        }, 0);
        block(3);
        await yieldToEventLoop();
        await yieldToEventLoop();
        check(ran, 'the timer ran');
      },
    ],
    [
      'monitorEventLoop sees a blocked loop, with the documented lag source',
      async () => {
        const worst: number[] = [];
        const watching = monitorEventLoop({
          intervalMs: 30,
          resolutionMs: 5,
          onSample: (sample) => worst.push(sample.maxLagMs),
        });
        try {
          equal(watching.lagSource, env.runtime === 'node' ? 'histogram' : 'timer', 'lagSource');
          equal(watching.measuresUtilization, env.runtime === 'node', 'measuresUtilization');
          await safeSleep(10);
          block(60);
          await safeSleep(80);
        } finally {
          watching.stop();
        }
        check(
          Math.max(...worst) >= 40,
          `worst lag seen ${String(Math.max(...worst))} ms over windows ${JSON.stringify(worst)}`,
        );
      },
    ],
    [
      `ambient scopes ${server ? 'follow await (AsyncLocalStorage)' : 'are not available: currentScope() is undefined'}`,
      async () => {
        const seen = await withTimeout(
          1_000,
          async () => {
            await safeSleep(1);
            return currentScope()?.name;
          },
          { name: 'ambient' },
        );
        equal(seen, server ? 'ambient' : undefined, 'currentScope() after an await');
        // A sleep given no signal: on server runtimes the ambient deadline ends
        // it; without async context it is not linked, and only the withTimeout
        // promise rejects on time (the documented browser caveat).
        let sleep: Promise<void> | undefined;
        const error = await rejection(withTimeout(10, () => (sleep = safeSleep(200))));
        check(isTimeoutError(error), 'withTimeout rejects on time');
        const sleepOutcome = await Promise.race([
          sleep?.then(
            () => 'finished',
            (e: unknown) => e,
          ),
          safeSleep(50).then(() => 'still sleeping'),
        ]);
        if (server) check(sleepOutcome === error, `the ambient deadline ended the sleep, got ${String(sleepOutcome)}`);
        else equal(sleepOutcome, 'still sleeping', 'the unlinked sleep');
      },
    ],
  ];

  const { channels, testing, tracing } = env;
  if (server) {
    list.push([
      'the loopsafe:scope TracingChannel: a bound store is active inside the scope; asyncEnd has the outcome',
      async () => {
        check(tracing !== undefined, 'the runner passes the TracingChannel on server runtimes');
        const ended: unknown[] = [];
        tracing.bindStore((context) => (context as { name: string }).name);
        tracing.onAsyncEnd((context) => {
          const { name, outcome } = context as { name: string; outcome: string };
          ended.push(`${name} ${outcome}`);
        });
        try {
          const seen = await withTimeout(
            1_000,
            async () => {
              await safeSleep(1);
              return tracing.store();
            },
            { name: 'traced' },
          );
          equal(seen, 'traced', 'the store inside the scope');
          await rejection(withTimeout(5, never, { name: 'late' }));
        } finally {
          tracing.onAsyncEnd(undefined);
          tracing.unbindStore();
        }
        equal(tracing.store(), undefined, 'the store outside');
        equal(ended, ['traced ok', 'late timeout'], 'asyncEnd');
      },
    ]);
    list.push([
      'diagnostics_channel publishes loopsafe:timeout',
      async () => {
        check(channels !== undefined, 'the runner passes diagnostics_channel on server runtimes');
        const messages: unknown[] = [];
        const listener = (message: unknown): void => {
          messages.push(message);
        };
        channels.subscribe('loopsafe:timeout', listener);
        try {
          await rejection(withTimeout(5, never, { name: 'published' }));
        } finally {
          channels.unsubscribe('loopsafe:timeout', listener);
        }
        equal(
          messages.map((m) => (m as { scopeName: string }).scopeName),
          ['published'],
          'messages',
        );
      },
    ]);
    list.push([
      'loopsafe/testing: the manual clock drives time and the leak check passes',
      async () => {
        check(testing !== undefined, 'the runner passes loopsafe/testing on server runtimes');
        const clock = testing.createManualClock();
        const controller = new AbortController();
        let woke = false;
        const sleeping = safeSleep(1_000, { clock, signal: controller.signal }).then(() => {
          woke = true;
        });
        equal(testing.abortListenerCount(controller.signal), 1, 'listener while sleeping');
        await clock.advance(999);
        check(!woke, 'not early');
        await clock.advance(1);
        await sleeping;
        check(woke, 'woke at 1000 ms');
        equal(testing.abortListenerCount(controller.signal), 0, 'listener after');
        testing.assertNoLeaks({ signals: [controller.signal] });
      },
    ]);
  }
  return list;
}

async function bounded(body: () => Promise<void> | void): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new AssertionFailed(`did not finish within ${String(TEST_TIMEOUT_MS)} ms`));
    }, TEST_TIMEOUT_MS);
  });
  try {
    await Promise.race([Promise.resolve().then(body), limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs every test in order; never throws. */
export async function runPortableSuite(env: PortableEnvironment): Promise<PortableResult[]> {
  const results: PortableResult[] = [];
  for (const [name, body] of tests(env)) {
    const start = performance.now();
    try {
      await bounded(body);
      results.push({ name, ok: true, ms: elapsedSince(start) });
    } catch (error) {
      const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      results.push({ name, ok: false, ms: elapsedSince(start), error: text });
    }
  }
  return results;
}
