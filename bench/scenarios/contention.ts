/**
 * Scenarios 5, 6 and 8: many callers sharing one thing — an upstream, two
 * locks, a long-lived signal.
 */
import { Mutex, pendingScopes, retry, RetryBudget, safeSleep, safeWaitFor, withTimeout } from '../../src/index.js';
import { sleep, upstream, type RunContext, type Scenario } from './types.js';

const CLIENTS = 200;
const ATTEMPTS = 5;
const DELAY_MS = 50;
const WINDOW_MS = 10;

/** A failing upstream that logs when each request starts and which attempt it is. */
function failingUpstream(ctx: RunContext): {
  call: (attempt: number, signal?: AbortSignal) => Promise<never>;
  report: () => void;
} {
  const origin = performance.now();
  const starts: { at: number; attempt: number }[] = [];
  const call = (attempt: number, signal?: AbortSignal): Promise<never> => {
    starts.push({ at: performance.now() - origin, attempt });
    return upstream<never>(ctx, 5, undefined as never, signal, new Error('503 from upstream'));
  };
  const peak = (filter: (s: { attempt: number }) => boolean): number => {
    const windows = new Map<number, number>();
    for (const s of starts) {
      if (!filter(s)) continue;
      const w = Math.floor(s.at / WINDOW_MS);
      windows.set(w, (windows.get(w) ?? 0) + 1);
    }
    return Math.max(0, ...windows.values());
  };
  const report = (): void => {
    ctx.metric('upstreamRequests', starts.length);
    ctx.metric(
      'peakPer10Ms',
      peak(() => true),
    );
    ctx.metric(
      'peakRetriesPer10Ms',
      peak((s) => s.attempt > 1),
    );
  };
  return { call, report };
}

/** 5. 200 clients, all failing at once, each retrying up to 5 attempts. */
export const retryStorm: Scenario = {
  id: '5',
  title: 'Retry storm (200 clients, failing upstream)',
  naive: {
    label: `fixed ${String(DELAY_MS)} ms retries ×${String(ATTEMPTS)}`,
    run: async (ctx) => {
      const { call, report } = failingUpstream(ctx);
      const client = async (): Promise<void> => {
        for (let attempt = 1; ; attempt++) {
          try {
            await call(attempt);
            return;
          } catch (error) {
            if (attempt >= ATTEMPTS) throw error;
            await sleep(DELAY_MS);
          }
        }
      };
      const results = await Promise.allSettled(Array.from({ length: CLIENTS }, client));
      report();
      return `${String(results.filter((r) => r.status === 'rejected').length)} clients failed`;
    },
  },
  loopsafe: {
    label: 'retry: full jitter + shared RetryBudget',
    maxMs: 2_000,
    run: async (ctx) => {
      const { call, report } = failingUpstream(ctx);
      const budget = new RetryBudget();
      const client = (): Promise<void> =>
        retry(({ attempt, signal }) => call(attempt, signal), {
          maxAttempts: ATTEMPTS,
          backoff: { initialMs: DELAY_MS, maxMs: 1_000, jitter: 'full' },
          budget,
          signal: ctx.parent,
        });
      const results = await Promise.allSettled(Array.from({ length: CLIENTS }, client));
      report();
      return `${String(results.filter((r) => r.status === 'rejected').length)} clients failed`;
    },
  },
  watchdogMs: 3_000,
};

/** Moves money between two accounts, locking `from` then `to`. */
async function transfer(ctx: RunContext, from: Mutex, to: Mutex): Promise<void> {
  const end = ctx.work.start();
  try {
    using _first = await from.acquire();
    await safeSleep(10);
    using _second = await to.acquire();
  } finally {
    end();
  }
}

/** A stall watchdog: every 25 ms, names the scopes open for more than `afterMs`. */
function stallWatchdog(afterMs: number): { stop: () => string[] } {
  const named = new Set<string>();
  const timer = setInterval(() => {
    for (const scope of pendingScopes()) if (scope.ageMs > afterMs) named.add(scope.name);
  }, 25);
  return {
    stop: () => {
      clearInterval(timer);
      return [...named].sort();
    },
  };
}

/** 6. Two tasks take two mutexes in opposite order. */
export const lockOrderDeadlock: Scenario = {
  id: '6',
  title: 'Lock-order deadlock (two Mutexes, opposite order)',
  naive: {
    label: 'acquire() with no deadline',
    run: async (ctx) => {
      const a = new Mutex();
      const b = new Mutex();
      const watchdog = stallWatchdog(100);
      const timer = setTimeout(() => {
        const names = watchdog.stop();
        ctx.metric('watchdogNamed', names.length === 0 ? 'nobody (no scopes to name)' : names.join(', '));
      }, ctx.watchdogMs - 50);
      await Promise.all([transfer(ctx, a, b), transfer(ctx, b, a)]);
      clearTimeout(timer);
    },
  },
  loopsafe: {
    label: 'each transfer in withTimeout(200)',
    maxMs: 260,
    run: async (ctx) => {
      const a = new Mutex();
      const b = new Mutex();
      const watchdog = stallWatchdog(100);
      const results = await Promise.allSettled([
        withTimeout(200, () => transfer(ctx, a, b), { name: 'transfer A→B', signal: ctx.parent }),
        withTimeout(200, () => transfer(ctx, b, a), { name: 'transfer B→A', signal: ctx.parent }),
      ]);
      const names = watchdog.stop();
      ctx.metric('watchdogNamed', names.join(', '));
      if (names.length !== 2) ctx.fail(`the watchdog named ${String(names.length)} stuck scopes, not 2`);
      const timedOut = results.filter((r) => r.status === 'rejected').length;
      if (a.locked || b.locked) ctx.fail('a lock is still held');
      return `${String(timedOut)} transfers timed out; both locks free`;
    },
  },
};

const OPERATIONS = 100_000;
const LEAK_BUDGET_MS = 2_000;

/** The wrapper a service writes by hand: follow the request signal, never unfollow it. */
function naiveWithSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    signal.addEventListener(
      'abort',
      () => {
        reject(signal.reason);
      },
      { once: true },
    );
    promise.then(resolve, reject);
  });
}

/** 8. 100,000 operations on one long-lived signal. */
export const listenerLeak: Scenario = {
  id: '8',
  title: 'Listener leak (100,000 ops on one signal)',
  naive: {
    label: 'hand-written signal wrapper',
    run: async (ctx) => {
      const until = performance.now() + LEAK_BUDGET_MS;
      let done = 0;
      while (done < OPERATIONS && performance.now() < until) {
        await naiveWithSignal(Promise.resolve(done), ctx.parent);
        done++;
      }
      ctx.metric('operations', done);
      return done < OPERATIONS
        ? `only ${String(done)} ops in ${String(LEAK_BUDGET_MS)} ms: each add scans the pile`
        : `${String(done)} ops`;
    },
  },
  loopsafe: {
    label: 'safeWaitFor(fn, { signal, timeout })',
    maxMs: 5_000,
    run: async (ctx) => {
      for (let i = 0; i < OPERATIONS; i++) {
        await safeWaitFor((signal) => (signal.aborted ? -1 : i), { signal: ctx.parent, timeout: 60_000 });
      }
      ctx.metric('operations', OPERATIONS);
      return `${String(OPERATIONS)} ops`;
    },
  },
  watchdogMs: 6_000,
};
