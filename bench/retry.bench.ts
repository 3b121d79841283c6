/**
 * Success-path cost per call of a retry wrapper around an operation that
 * succeeds at once: loopsafe's retry against a hand-written try/catch loop
 * (the floor), p-retry and cockatiel, measured in one process run.
 *
 * Run: npx tsx bench/retry.bench.ts   (add --json to print machine-readable results)
 */
import { ExponentialBackoff, handleAll, retry as cockatielRetry } from 'cockatiel';
import pRetry from 'p-retry';
import { backoff } from '../src/backoff.js';
import { retry } from '../src/retry.js';
import { RetryBudget } from '../src/retry-budget.js';
import { withTimeout } from '../src/scope.js';

const ROUNDS = 5;
const CALLS = 50_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The floor: what a careful engineer writes by hand (3 attempts, exponential delay). */
async function handWritten<T>(fn: (attempt: number) => Promise<T>, maxAttempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (attempt >= maxAttempts) throw error;
      await sleep(100 * 2 ** (attempt - 1));
    }
  }
}

const ok = (): Promise<number> => Promise.resolve(1);
const cockatielPolicy = cockatielRetry(handleAll, { maxAttempts: 2, backoff: new ExponentialBackoff() });
const sharedBackoff = backoff({ initialMs: 100, maxMs: 10_000 });
const budget = new RetryBudget();

const candidates: Record<string, () => Promise<unknown>> = {
  'hand-written try/catch loop': () => handWritten(ok),
  'loopsafe retry(fn)': () => retry(ok),
  'loopsafe retry(fn, { timeout })': () => retry(ok, { timeout: 60_000 }),
  'loopsafe retry(fn, { attemptTimeout })': () => retry(ok, { attemptTimeout: 10_000 }),
  'loopsafe retry(fn, { backoff, budget, timeout })': () => retry(ok, { backoff: sharedBackoff, budget, timeout: 60_000 }),
  'loopsafe retry inside withTimeout': () => withTimeout(60_000, () => retry(ok)),
  'p-retry': () => pRetry(ok, { retries: 2 }),
  'cockatiel retry policy': () => cockatielPolicy.execute(ok),
};

async function timeOne(run: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < CALLS; i++) await run();
  return ((performance.now() - started) * 1000) / CALLS;
}

async function main(): Promise<void> {
  const names = Object.keys(candidates);
  const samples = new Map<string, number[]>(names.map((name) => [name, []]));
  for (const name of names) await timeOne(candidates[name] as () => Promise<unknown>); // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    // Interleave candidates so drift in machine load hits them all alike.
    for (const name of names) samples.get(name)?.push(await timeOne(candidates[name] as () => Promise<unknown>));
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;
  const floor = median(samples.get('hand-written try/catch loop') ?? []);
  const rows = names.map((name) => {
    const us = median(samples.get(name) ?? []);
    return { name, usPerCall: Number(us.toFixed(3)), ratioToHandWritten: Number((us / floor).toFixed(2)) };
  });
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify({ node: process.version, calls: CALLS, rounds: ROUNDS, rows }, null, 2));
    return;
  }
  console.log(`retry around an operation that succeeds at once — Node ${process.version}, ${String(CALLS)} sequential calls × ${String(ROUNDS)} rounds, median`);
  console.table(rows);
}

await main();
