/**
 * The scenarios every fake-timer tool must drive, written once: each takes
 * the tool's "advance time by ms, letting promises settle" and checks what
 * loopsafe does with it. Used by vitest (its own and @sinonjs/fake-timers),
 * by a node:test file (mock.timers) and, through the built package, by jest.
 */
import type * as Loopsafe from '../../src/index.js';

export type Advance = (ms: number) => Promise<void>;

interface Check {
  (condition: boolean, message: string): void;
}

/** Tracks a promise's state without awaiting it. */
function watch<T>(promise: Promise<T>): { state: 'pending' | 'fulfilled' | 'rejected'; value?: T; reason?: unknown } {
  const tracker: { state: 'pending' | 'fulfilled' | 'rejected'; value?: T; reason?: unknown } = { state: 'pending' };
  promise.then(
    (value) => {
      tracker.state = 'fulfilled';
      tracker.value = value;
    },
    (reason: unknown) => {
      tracker.state = 'rejected';
      tracker.reason = reason;
    },
  );
  return tracker;
}

const hung = <T>(): Promise<T> => new Promise<T>(() => undefined);

export const scenarios: Record<string, (loopsafe: typeof Loopsafe, advance: Advance, check: Check) => Promise<void>> = {
  async 'safeSleep ends when the tool fires its timer'(loopsafe, advance, check) {
    const sleeping = watch(loopsafe.safeSleep(100));
    await advance(99);
    check(sleeping.state === 'pending', 'still asleep at 99 ms');
    await advance(1);
    check(sleeping.state === 'fulfilled', 'awake at 100 ms');
  },

  async 'withTimeout rejects with its TimeoutError at the deadline'(loopsafe, advance, check) {
    const run = watch(loopsafe.withTimeout(100, () => hung(), { name: 'slow' }));
    await advance(99);
    check(run.state === 'pending', 'pending at 99 ms');
    await advance(1);
    check(run.state === 'rejected', 'rejected at 100 ms');
    check(loopsafe.isTimeoutError(run.reason), 'with a TimeoutError');
    check((run.reason as Loopsafe.TimeoutError).scopeName === 'slow', 'naming the scope');
  },

  async 'safeWaitFor bounds a promise; an inner deadline that comes first wins'(loopsafe, advance, check) {
    const wait = watch(loopsafe.safeWaitFor(hung(), 50));
    const nested = watch(
      loopsafe.withTimeout(200, () => loopsafe.withTimeout(80, () => hung(), { name: 'inner' }), { name: 'outer' }),
    );
    await advance(50);
    check(wait.state === 'rejected', 'the wait timed out at 50 ms');
    check(nested.state === 'pending', 'the nested scopes are still running at 50 ms');
    // 31, not 30: a tool that leaves performance.now() alone (node:test's) keeps the real
    // microseconds that passed between opening the wait and the scopes in their deadlines.
    await advance(31);
    check(nested.state === 'rejected', 'the inner scope expired by 81 ms');
    check((nested.reason as Loopsafe.TimeoutError).scopeName === 'inner', 'named inner');
  },

  async 'retry waits its backoff on the tool’s clock'(loopsafe, advance, check) {
    let calls = 0;
    const run = watch(
      loopsafe.retry(
        () => {
          calls++;
          return calls < 3 ? Promise.reject(new Error('flaky')) : Promise.resolve('ok');
        },
        { maxAttempts: 3, backoff: { initialMs: 100, jitter: 'none' } },
      ),
    );
    await advance(0);
    check(calls === 1, 'one call before any time passes');
    await advance(100);
    check(calls === 2, 'the second after 100 ms');
    await advance(200);
    check(run.state === 'fulfilled' && run.value === 'ok', 'done after 300 ms');
  },

  async 'a semaphore waiter times out on the tool’s clock'(loopsafe, advance, check) {
    const semaphore = new loopsafe.Semaphore(1);
    semaphore.tryAcquire();
    const waiter = watch(semaphore.acquire({ timeout: 40 }));
    await advance(40);
    check(waiter.state === 'rejected' && loopsafe.isTimeoutError(waiter.reason), 'timed out at 40 ms');
    check(semaphore.waiting === 0, 'and left the queue');
  },

  async 'a deadline part-way through keeps its time when a later one starts'(loopsafe, advance, check) {
    const run = watch(loopsafe.withTimeout(100, () => hung(), { name: 'first' }));
    await advance(50);
    // A tool that leaves performance.now() alone reads 0 ms passed here: the first deadline
    // must not be measured again from now (it would end at 150 ms).
    const sleeping = watch(loopsafe.safeSleep(1_000));
    await advance(49);
    check(run.state === 'pending', 'the first deadline is pending at 99 ms');
    await advance(1);
    check(run.state === 'rejected' && loopsafe.isTimeoutError(run.reason), 'and passes at 100 ms');
    await advance(949);
    check(sleeping.state === 'pending', 'the later sleep is pending at 1,049 ms');
    await advance(1);
    check(sleeping.state === 'fulfilled', 'and ends at 1,050 ms');
  },

  async 'a deadline started later but due sooner comes first'(loopsafe, advance, check) {
    const long = watch(loopsafe.safeSleep(500));
    await advance(100);
    const short = watch(loopsafe.safeSleep(100));
    await advance(100);
    check(short.state === 'fulfilled' && long.state === 'pending', 'the short sleep ends at 200 ms, the long one not');
    await advance(300);
    check(long.state === 'fulfilled', 'the long one ends at 500 ms');
  },
};
