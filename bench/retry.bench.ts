/**
 * Per-call cost of a retry wrapper, success path (the operation succeeds at
 * once) and fail-twice path (two failures, then success; every library set to
 * a zero delay), as ratios to a hand-written loop in the same run: loopsafe
 * retry against p-retry, cockatiel, abort-controller-x, exponential-backoff
 * and effect.
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
import { emit, flags, target, timeCandidates, type TimedRow } from './lib/harness.js';

const CALLS = flags.quick ? 5_000 : 50_000;
const FAIL_CALLS = flags.quick ? 100 : 300;
const ROUNDS = flags.quick ? 1 : 5;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The floor: what a careful engineer writes by hand (3 attempts, exponential delay). */
async function handWritten<T>(fn: () => Promise<T>, baseMs: number, maxAttempts = 3): Promise<T> {
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
    'hand-written loop': () => handWritten(ok, 100),
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
    'hand-written loop': () => handWritten(failTwice(), 0),
    'loopsafe retry(fn)': () => retry(failTwice(), { backoff: zero }),
    'p-retry': () => pRetry(failTwice(), { retries: 2, minTimeout: 0, maxTimeout: 0 }),
    'cockatiel retry policy': () => cockatielPolicy.execute(failTwice()),
    'abort-controller-x retry': () => acxRetry(never, failTwice(), { baseMs: 0, maxDelayMs: 0, maxAttempts: 3 }),
    'exponential-backoff backOff': () => backOff(failTwice(), { numOfAttempts: 3, startingDelay: 0, maxDelay: 0 }),
    'effect Effect.retry': () => Effect.runPromise(Effect.retry(Effect.tryPromise(failTwice()), Schedule.recurs(2))),
  };
}

const row = (rows: TimedRow[], name: string): TimedRow | undefined => rows.find((r) => r.name === name);

async function main(): Promise<void> {
  const success = await timeCandidates(successPath(), 'hand-written loop', CALLS, ROUNDS);
  const failing = await timeCandidates(failTwicePath(), 'hand-written loop', FAIL_CALLS, ROUNDS);
  const mine = row(success, 'loopsafe retry(fn)');
  const pRetryRow = row(success, 'p-retry');
  emit(
    {
      bench: 'retry',
      node: process.version,
      quick: flags.quick,
      params: { calls: CALLS, failCalls: FAIL_CALLS, rounds: ROUNDS },
      tables: { success, failTwice: failing },
      targets: [
        target('retry.success', 'retry(fn) success path vs hand-written loop', mine?.ratio ?? Number.NaN, 2),
        target(
          'retry.vsPRetry',
          'retry(fn) success path vs p-retry',
          (mine?.usPerCall ?? Number.NaN) / (pRetryRow?.usPerCall ?? Number.NaN),
          0.1,
        ),
      ],
      failures: [],
      notes: [
        "fail-twice: every library at a zero delay; the hand-written loop, loopsafe, cockatiel and exponential-backoff still wait on a timer (≥ 1 ms in Node), p-retry and abort-controller-x skip it, effect's Schedule.recurs has no delay: that table measures how each one waits, not its overhead",
      ],
    },
    {
      success: 'Success path (µs per call; ratio to the hand-written loop)',
      failTwice: 'Fail twice then succeed, zero delay (µs per call; ratio to the hand-written loop)',
    },
  );
}

await main();
