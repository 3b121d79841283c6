/**
 * Per-call cost of bounding an already-resolved operation with a timeout:
 * loopsafe's safeWaitFor against a hand-written Promise.race + setTimeout +
 * clearTimeout (the floor) and p-timeout, measured in one process run.
 *
 * Run: npm run bench   (add --json to print machine-readable results)
 */
import pTimeout from 'p-timeout';
import { createTimeoutError, TimeoutError } from '../src/errors.js';
import { safeWaitFor, withTimeout } from '../src/index.js';

const ROUNDS = 5;
const CALLS = 100_000;

function baseline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => { reject(new Error('timeout')); }, ms);
    }),
  ]).finally(() => { clearTimeout(timer); });
}

const candidates: Record<string, () => Promise<unknown>> = {
  'hand-written race': () => baseline(Promise.resolve(1), 60_000),
  'loopsafe safeWaitFor(promise)': () => safeWaitFor(Promise.resolve(1), 60_000),
  'loopsafe safeWaitFor(fn)': () => safeWaitFor(() => 1, 60_000),
  'loopsafe withTimeout(async fn)': () => withTimeout(60_000, () => Promise.resolve(1)),
  'p-timeout': () => pTimeout(Promise.resolve(1), { milliseconds: 60_000 }),
};

async function timeOne(run: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < CALLS; i++) await run();
  return ((performance.now() - started) * 1000) / CALLS;
}

/** What a timeout costs when it does fire: the error with a full stack, versus ours (stack taken later, at the await). */
function errorCosts(): { name: string; usPerCall: number }[] {
  const sink: unknown[] = [];
  const time = (make: () => unknown): number => {
    for (let i = 0; i < 20_000; i++) sink[i & 255] = make();
    const started = performance.now();
    for (let i = 0; i < CALLS; i++) sink[i & 255] = make();
    return Number((((performance.now() - started) * 1000) / CALLS).toFixed(3));
  };
  return [
    { name: 'new TimeoutError() (stack captured)', usPerCall: time(() => new TimeoutError('x', { scopeName: 'a', timeoutMs: 1 })) },
    { name: 'loopsafe createTimeoutError (no stack yet)', usPerCall: time(() => createTimeoutError('a', 1)) },
  ];
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
  const floor = median(samples.get('hand-written race') ?? []);
  const rows = names.map((name) => {
    const us = median(samples.get(name) ?? []);
    return { name, usPerCall: Number(us.toFixed(3)), ratioToBaseline: Number((us / floor).toFixed(2)) };
  });
  const errors = errorCosts();
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify({ node: process.version, calls: CALLS, rounds: ROUNDS, rows, errors }, null, 2));
    return;
  }
  console.log(`safeWaitFor around an already-resolved promise — Node ${process.version}, ${String(CALLS)} sequential calls × ${String(ROUNDS)} rounds, median`);
  console.table(rows);
  console.log('Creating the TimeoutError when a deadline does pass');
  console.table(errors);
}

await main();
