/**
 * Per-call cost of a retry wrapper, success path (the operation succeeds at
 * once) and fail-twice path (two failures, then success; every library set to
 * a zero delay), as ratios to a hand-written loop in the same run (the plainest
 * one: a promise chain, no async function): loopsafe retry against p-retry,
 * cockatiel, abort-controller-x, exponential-backoff and effect. The loop used
 * before issue 13 (an async for/try/await) stays as a row marked "before", so
 * the Node 20 figures committed then can still be compared with.
 *
 * Run: npx tsx bench/retry.bench.ts   (--quick for a smoke run, --json for machine-readable output)
 */
import { retry as acxRetry } from 'abort-controller-x';
import { ConstantBackoff, ExponentialBackoff, handleAll, retry as cockatielRetry } from 'cockatiel';
import { Effect, Schedule } from 'effect';
import { backOff } from 'exponential-backoff';
import pRetry from 'p-retry';
import { backoff } from '../src/backoff.js';
import { retry } from '../src/retry.js';
import { RetryBudget } from '../src/retry-budget.js';
import { withTimeout } from '../src/scope.js';
import { emit, flags, ratioTarget, timeCandidates, timeInTwoPasses } from './lib/harness.js';
import { targets } from './lib/targets.js';

const CALLS = flags.calls ?? (flags.quick ? 5_000 : 50_000);
const FAIL_CALLS = flags.quick ? 100 : 300;
const ROUNDS = flags.rounds ?? (flags.quick ? 1 : 5);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const LOOP = 'hand-written loop';
const LOOP_BEFORE = 'hand-written loop (before: async for/try/await)';

/** The floor: 3 attempts, exponential delay, the plainest way (a promise chain, no async function). */
function handWritten<T>(fn: () => Promise<T>, delayMs: number, attemptsLeft = 2): Promise<T> {
  return fn().catch((error: unknown) => {
    if (attemptsLeft === 0) throw error;
    return sleep(delayMs).then(() => handWritten(fn, delayMs * 2, attemptsLeft - 1));
  });
}

/** The loop used as the floor before issue 13. */
async function handWrittenBefore<T>(fn: () => Promise<T>, baseMs: number, maxAttempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (attempt >= maxAttempts) throw error;
      await sleep(baseMs * 2 ** (attempt - 1));
    }
  }
}

const ok = (): Promise<number> => Promise.resolve(1);
/** Fails twice, then succeeds: a fresh one per call. */
function failTwice(): () => Promise<number> {
  let calls = 0;
  return () => (++calls <= 2 ? Promise.reject(new Error('flaky')) : Promise.resolve(calls));
}

const never = new AbortController().signal;
const budget = new RetryBudget();
const zero = backoff({ initialMs: 0, maxMs: 0, jitter: 'none' });

function successPath(): Record<string, () => Promise<unknown>> {
  const cockatielPolicy = cockatielRetry(handleAll, { maxAttempts: 2, backoff: new ExponentialBackoff() });
  const sharedBackoff = backoff({ initialMs: 100, maxMs: 10_000 });
  return {
    [LOOP]: () => handWritten(ok, 100),
    [LOOP_BEFORE]: () => handWrittenBefore(ok, 100),
    'loopsafe retry(fn)': () => retry(ok),
    'loopsafe retry(fn, { timeout })': () => retry(ok, { timeout: 60_000 }),
    'loopsafe retry(fn, { backoff, budget, timeout })': () =>
      retry(ok, { backoff: sharedBackoff, budget, timeout: 60_000 }),
    'loopsafe retry inside withTimeout': () => withTimeout(60_000, () => retry(ok)),
    'p-retry': () => pRetry(ok, { retries: 2 }),
    'cockatiel retry policy': () => cockatielPolicy.execute(ok),
    'abort-controller-x retry': () => acxRetry(never, ok, { maxAttempts: 3 }),
    'exponential-backoff backOff': () => backOff(ok, { numOfAttempts: 3 }),
    'effect Effect.retry': () => Effect.runPromise(Effect.retry(Effect.tryPromise(ok), Schedule.recurs(2))),
  };
}

function failTwicePath(): Record<string, () => Promise<unknown>> {
  const cockatielPolicy = cockatielRetry(handleAll, { maxAttempts: 2, backoff: new ConstantBackoff(0) });
  return {
    [LOOP]: () => handWritten(failTwice(), 0),
    'loopsafe retry(fn)': () => retry(failTwice(), { backoff: zero }),
    'p-retry': () => pRetry(failTwice(), { retries: 2, minTimeout: 0, maxTimeout: 0 }),
    'cockatiel retry policy': () => cockatielPolicy.execute(failTwice()),
    'abort-controller-x retry': () => acxRetry(never, failTwice(), { baseMs: 0, maxDelayMs: 0, maxAttempts: 3 }),
    'exponential-backoff backOff': () => backOff(failTwice(), { numOfAttempts: 3, startingDelay: 0, maxDelay: 0 }),
    'effect Effect.retry': () => Effect.runPromise(Effect.retry(Effect.tryPromise(failTwice()), Schedule.recurs(2))),
  };
}

/** Peers are timed in a second pass, apart from the rows the target divides (see timeInTwoPasses). */
const isPeer = (name: string): boolean => !name.startsWith('hand-written') && !name.startsWith('loopsafe');

async function main(): Promise<void> {
  // As in bench/wait-for.bench.ts: another timer of the same duration stays pending throughout,
  // so a call's timer joins Node's list for that duration instead of creating it.
  const inFlight = setTimeout(() => undefined, 60_000).unref();
  const tables = {
    ...(await timeInTwoPasses({ success: { candidates: successPath(), baseline: LOOP } }, CALLS, ROUNDS, isPeer)),
    failTwice: await timeCandidates(failTwicePath(), LOOP, FAIL_CALLS, ROUNDS),
  };
  clearTimeout(inFlight);
  emit(
    {
      bench: 'retry',
      node: process.version,
      quick: flags.quick,
      params: { calls: CALLS, failCalls: FAIL_CALLS, rounds: ROUNDS },
      tables,
      targets: [ratioTarget(targets.retryTimeout, tables, 'success', 'loopsafe retry(fn, { timeout })', LOOP)],
      failures: [],
      notes: [
        "fail-twice: every library at a zero delay; the hand-written loop, loopsafe, cockatiel and exponential-backoff still wait on a timer (≥ 1 ms in Node), p-retry and abort-controller-x skip it, effect's Schedule.recurs has no delay: that table measures how each one waits, not its overhead",
        "success path: peers (every row but the hand-written and loopsafe ones) are timed in a second pass beside the baseline, their ratio to that pass's baseline",
        'the row marked "before" is the hand-written loop used before issue 13, kept so the figures committed then stay comparable',
      ],
    },
    {
      success: 'Success path (µs per call; ratio to the hand-written loop)',
      failTwice: 'Fail twice then succeed, zero delay (µs per call; ratio to the hand-written loop)',
    },
  );
}

await main();
