/**
 * Resilience policies: the per-call cost of `CircuitBreaker.run` in the closed
 * state (the path every healthy call takes) against a bare call of the same
 * async function and against cockatiel 4's circuit breaker; the cost of
 * `RateLimiter.acquire()` when tokens are available; and, in virtual time, how
 * many requests reach a failing upstream with and without a breaker in front
 * of it (the chart bench/report.ts renders as docs/media/breaker.svg).
 *
 * Run: npx tsx bench/policies.bench.ts   (--quick for a smoke run, --json for machine-readable output)
 */
import { circuitBreaker, ConsecutiveBreaker, handleAll } from 'cockatiel';
import { CircuitBreaker } from '../src/circuit-breaker.js';
import { KeyedRateLimiter, RateLimiter } from '../src/rate-limiter.js';
import { createManualClock } from '../src/testing.js';
import { emit, flags, ratioTarget, rowValue, target, timeInTwoPasses } from './lib/harness.js';
import { targets } from './lib/targets.js';

const CALLS = flags.calls ?? (flags.quick ? 5_000 : 500_000);
const ROUNDS = flags.rounds ?? (flags.quick ? 1 : 5);

const BARE = 'bare call of the async function';
const LOOPSAFE_BREAKER = 'loopsafe CircuitBreaker.run(fn)';
const COCKATIEL = 'cockatiel circuitBreaker().execute(fn)';
const AWAIT = 'await of a resolved promise';
const WITHOUT = 'without a breaker';
const WITH = 'with a CircuitBreaker';
const LOOPSAFE_ACQUIRE = 'loopsafe RateLimiter.acquire()';

/** The protected operation: an async function that succeeds at once. */
// eslint-disable-next-line @typescript-eslint/require-await -- an async function, as the code a breaker guards is
const work = async (): Promise<number> => 1;

function breakerTable(): Record<string, () => Promise<unknown>> {
  const consecutive = new CircuitBreaker({ name: 'bench', failureThreshold: 5, openMs: 10_000 });
  const windowed = new CircuitBreaker({ name: 'bench-rate', failureRate: 0.5, minimumCalls: 10, windowMs: 10_000 });
  const cockatiel = circuitBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) });
  return {
    [BARE]: () => work(),
    [LOOPSAFE_BREAKER]: () => consecutive.run(work),
    'loopsafe CircuitBreaker.run(fn), failureRate window': () => windowed.run(work),
    [COCKATIEL]: () => cockatiel.execute(work),
  };
}

function limiterTable(): Record<string, () => Promise<unknown>> {
  // A rate no bench can exhaust: every call finds its token.
  const limiter = new RateLimiter({ ratePerSecond: 1e12, burst: 1e12 });
  const keyed = new KeyedRateLimiter({ ratePerSecond: 1e12, burst: 1e12, maxKeys: 1_000 });
  const resolved = Promise.resolve();
  return {
    [AWAIT]: () => resolved,
    [LOOPSAFE_ACQUIRE]: () => limiter.acquire(),
    'loopsafe RateLimiter.acquire({ cost: 1 })': () => limiter.acquire({ cost: 1 }),
    'loopsafe KeyedRateLimiter.acquire(key)': () => keyed.acquire('client-42'),
  };
}

/** Peers are timed in a second pass, apart from the rows the targets divide (see timeInTwoPasses). */
const isPeer = (name: string): boolean => name.startsWith('cockatiel');

/** One point of the upstream chart: requests that reached the upstream in one second of virtual time. */
interface UpstreamRow {
  second: number;
  series: string;
  requests: number;
}

/**
 * 100 requests a second for 60 s of virtual time (the manual clock); the
 * upstream fails every request from 10 s to 40 s. Without a breaker every
 * request reaches it; with one (5 failures in a row open it for 5 s, one trial
 * at a time), only the trials do while it is down.
 */
async function upstreamOutage(): Promise<UpstreamRow[]> {
  const seconds = 60;
  const perSecond = 100;
  const downFrom = 10_000;
  const downUntil = 40_000;
  const rows: UpstreamRow[] = [];
  for (const withBreaker of [false, true]) {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'upstream', failureThreshold: 5, openMs: 5_000, clock });
    const reached = new Array<number>(seconds).fill(0);
    const upstream = (): Promise<string> => {
      const now = clock.now();
      const second = Math.floor(now / 1_000);
      reached[second] = (reached[second] ?? 0) + 1;
      return now >= downFrom && now < downUntil ? Promise.reject(new Error('503')) : Promise.resolve('200');
    };
    for (let i = 0; i < seconds * perSecond; i++) {
      await (withBreaker ? breaker.run(upstream) : upstream()).catch(() => undefined);
      await clock.advance(1_000 / perSecond);
    }
    const series = withBreaker ? WITH : WITHOUT;
    reached.forEach((requests, second) => rows.push({ second, series, requests }));
  }
  return rows;
}

async function main(): Promise<void> {
  const timed = await timeInTwoPasses(
    {
      breaker: { candidates: breakerTable(), baseline: BARE },
      limiter: { candidates: limiterTable(), baseline: AWAIT },
    },
    CALLS,
    ROUNDS,
    isPeer,
  );
  const upstream = await upstreamOutage();
  const tables = { ...timed, upstream };
  const reached = (series: string): number =>
    upstream.filter((row) => row.series === series).reduce((sum, row) => sum + row.requests, 0);
  emit(
    {
      bench: 'policies',
      node: process.version,
      quick: flags.quick,
      params: { calls: CALLS, rounds: ROUNDS },
      tables,
      targets: [
        ratioTarget(targets.breakerVsCockatiel, tables, 'breaker', LOOPSAFE_BREAKER, COCKATIEL, 'ratio'),
        ratioTarget(targets.breakerVsBare, tables, 'breaker', LOOPSAFE_BREAKER, BARE),
        target(targets.limiterAcquire, rowValue(tables.limiter, LOOPSAFE_ACQUIRE, 'usPerCall')),
      ],
      failures: [],
      notes: [
        'breaker: every call succeeds (the closed state); no ambient scope and no signal, so loopsafe calls the function directly',
        "breaker: cockatiel is timed in a second pass beside the bare call, its ratio to that pass's bare call; the target vs cockatiel divides the two rows' ratios",
        'limiter: a rate no run can exhaust, so every acquire finds its token; the first row is the floor of awaiting anything',
        `upstream: 100 requests/s for 60 s of virtual time, the upstream failing from 10 s to 40 s; requests reaching it: ${String(reached(WITHOUT))} without a breaker, ${String(reached(WITH))} with one`,
      ],
    },
    {
      breaker: 'CircuitBreaker, closed state (µs per call; ratio to the bare call)',
      limiter: 'RateLimiter.acquire() with tokens available (µs per call; ratio to awaiting a resolved promise)',
      upstream: 'Requests reaching a failing upstream, per second of virtual time',
    },
  );
}

await main();
