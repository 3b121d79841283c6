/**
 * What 100,000 operations on one long-lived parent signal leave behind: abort
 * listeners on the parent, and live heap after a full GC (per operation and in
 * all), for loopsafe's primitives and the usual alternatives.
 *
 * Run: node --expose-gc --import tsx bench/memory.bench.ts   (--quick, --json)
 */
import { setMaxListeners } from 'node:events';
import pTimeout from 'p-timeout';
import { retry, safeGather, safeWaitFor, withTimeout } from '../src/index.js';
import { abortListeners, emit, flags, fullGc, round, target, type Target } from './lib/harness.js';
import { memoryCandidates, memoryTarget, targets as specs } from './lib/targets.js';

const OPERATIONS = 100_000;
const MS = 60_000;
const task = (signal: AbortSignal): Promise<number> =>
  signal.aborted ? Promise.reject(signal.reason) : Promise.resolve(1);

type Candidate = (parent: AbortSignal) => Promise<unknown>;
const mine: Record<(typeof memoryCandidates)[number], Candidate> = {
  'loopsafe safeWaitFor(fn, { signal, timeout })': (parent) => safeWaitFor(task, { signal: parent, timeout: MS }),
  'loopsafe withTimeout(fn, { signal })': (parent) =>
    withTimeout(MS, (scope) => task(scope.signal), { signal: parent }),
  'loopsafe retry(fn, { signal })': (parent) => retry(({ signal }) => task(signal), { signal: parent }),
  'loopsafe safeGather([fn], { signal })': (parent) => safeGather([task], { signal: parent }),
};
const candidates: Record<string, Candidate> = {
  ...mine,
  'p-timeout { signal }': (parent) => pTimeout(Promise.resolve(1), { milliseconds: MS, signal: parent }),
  'AbortSignal.any([parent, AbortSignal.timeout])': (parent) =>
    task(AbortSignal.any([parent, AbortSignal.timeout(MS)])),
};

async function measure(
  run: (parent: AbortSignal) => Promise<unknown>,
): Promise<{ listeners: number; retainedKb: number; bytesPerOp: number }> {
  const parent = new AbortController().signal;
  setMaxListeners(0, parent);
  fullGc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < OPERATIONS; i++) await run(parent);
  await new Promise((resolve) => setImmediate(resolve));
  fullGc();
  const retained = process.memoryUsage().heapUsed - before;
  const listeners = abortListeners(parent);
  return { listeners, retainedKb: Math.round(retained / 1024), bytesPerOp: round(retained / OPERATIONS, 1) };
}

async function main(): Promise<void> {
  const rows: Record<string, unknown>[] = [];
  const failures: string[] = [];
  const targets: Target[] = [];
  let listenersLeft = 0;
  for (const [name, run] of Object.entries(candidates)) {
    if (flags.quick && !(name in mine)) continue;
    const result = await measure(run);
    rows.push({ name, ...result });
    if (name in mine) {
      listenersLeft += result.listeners;
      if (result.listeners !== 0)
        failures.push(`${name}: ${String(result.listeners)} listeners left after ${String(OPERATIONS)} operations`);
      targets.push(target(memoryTarget(name as keyof typeof mine), result.retainedKb / 1024));
    }
  }
  targets.push(target(specs.memoryListeners, listenersLeft));
  emit(
    {
      bench: 'memory',
      node: process.version,
      quick: flags.quick,
      params: { operations: OPERATIONS },
      tables: { memory: rows },
      targets,
      failures,
      notes: [
        'retained = heapUsed after a full GC minus before; a few hundred KB either way is V8 noise (code, feedback vectors)',
      ],
    },
    { memory: `${String(OPERATIONS)} sequential operations on one long-lived parent signal` },
  );
}

await main();
