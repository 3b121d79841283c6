/**
 * Wall time and peak heap of 10,000 tasks at concurrency 100: loopsafe's
 * safeGather / safeGatherSettled against a hand-written worker pool (the
 * floor), p-map, and an unbounded Promise.all — measured in one process run,
 * candidates interleaved, median of ROUNDS.
 *
 * Two workloads: `immediate` (each task waits one macrotask, like a fast I/O
 * call) and `microtask` (each task awaits a resolved promise: pure overhead).
 * A second floor, `hand-written pool + AbortController`, gives every task its
 * own signal, as safeGather does: on Node 20 creating an AbortSignal costs
 * ~2 µs plus the GC of it, the bulk of safeGather's per-task price.
 *
 * Wall time comes from runs that do nothing else. Peak heap comes from
 * separate runs: the live heap (heapUsed right after a full GC) sampled at
 * every 500th task start and end, minus the live heap before the run — what
 * the gather actually keeps alive, not the garbage it has not yet collected.
 *
 * Run: node --expose-gc --import tsx bench/gather.bench.ts   (add --json for machine-readable output)
 */
import pMap from 'p-map';
import { safeGather, safeGatherSettled } from '../src/gather.js';

const TASKS = 10_000;
const CONCURRENCY = 100;
const ROUNDS = 7;
const SAMPLE_EVERY = 500;

type Task = (signal?: AbortSignal) => Promise<number>;
type Runner = (tasks: Task[]) => Promise<unknown>;

const gc = (globalThis as { gc?: () => void }).gc;
/** Two passes: weakly held objects (signals, timers) need a second GC to be freed. */
function fullGc(): void {
  gc?.();
  gc?.();
}
let sampling = false;
let peakHeap = 0;
function sampleHeap(): void {
  if (!sampling) return;
  fullGc();
  const used = process.memoryUsage().heapUsed;
  if (used > peakHeap) peakHeap = used;
}

const workloads: Record<string, (i: number) => Promise<number>> = {
  immediate: (i) => new Promise((resolve) => setImmediate(resolve, i)),
  microtask: (i) => Promise.resolve(i),
};

function makeTasks(work: (i: number) => Promise<number>): Task[] {
  return Array.from({ length: TASKS }, (_, i) => async () => {
    if (i % SAMPLE_EVERY === 0) sampleHeap();
    const value = await work(i);
    if (i % SAMPLE_EVERY === 0) sampleHeap();
    return value;
  });
}

/** The floor: CONCURRENCY workers pulling indices from a shared counter. */
async function handWrittenPool(tasks: Task[], limit: number): Promise<number[]> {
  const results = new Array<number>(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await (tasks[i] as Task)();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

/** The floor with the feature: the same pool, one AbortController per task. */
async function handWrittenPoolWithSignals(tasks: Task[], limit: number): Promise<number[]> {
  const results = new Array<number>(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await (tasks[i] as Task)(new AbortController().signal);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

const candidates: Record<string, Runner> = {
  'hand-written pool': (tasks) => handWrittenPool(tasks, CONCURRENCY),
  'hand-written pool + AbortController': (tasks) => handWrittenPoolWithSignals(tasks, CONCURRENCY),
  'loopsafe safeGather': (tasks) => safeGather(tasks, { concurrency: CONCURRENCY }),
  'loopsafe safeGatherSettled': (tasks) => safeGatherSettled(tasks, { concurrency: CONCURRENCY }),
  'p-map': (tasks) => pMap(tasks, (task) => task(), { concurrency: CONCURRENCY }),
  'Promise.all (unbounded)': (tasks) => Promise.all(tasks.map((task) => task())),
};

async function measure(run: Runner, work: (i: number) => Promise<number>, heap: boolean): Promise<number> {
  const tasks = makeTasks(work);
  if (heap) fullGc();
  const baseline = process.memoryUsage().heapUsed;
  peakHeap = baseline;
  sampling = heap;
  const started = performance.now();
  const results = (await run(tasks)) as unknown[];
  const ms = performance.now() - started;
  sampleHeap();
  sampling = false;
  if (results.length !== TASKS) throw new Error('wrong result count');
  return heap ? (peakHeap - baseline) / 1024 : ms;
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

async function main(): Promise<void> {
  if (gc === undefined) throw new Error('run with --expose-gc: node --expose-gc --import tsx bench/gather.bench.ts');
  const names = Object.keys(candidates);
  const report: Record<string, unknown[]> = {};
  for (const [workload, work] of Object.entries(workloads)) {
    const samples = new Map(names.map((name) => [name, { ms: [] as number[], heap: [] as number[] }]));
    for (const name of names) await measure(candidates[name] as Runner, work, false); // warm-up
    // Interleave candidates so drift in machine load hits them all alike; the
    // GC-heavy heap runs come after all the timed ones so they cannot skew them.
    for (let round = 0; round < ROUNDS; round++) {
      for (const name of names) samples.get(name)?.ms.push(await measure(candidates[name] as Runner, work, false));
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const name of names) samples.get(name)?.heap.push(await measure(candidates[name] as Runner, work, true));
    }
    const floor = samples.get('hand-written pool');
    const floorMs = median(floor?.ms ?? []);
    const floorHeap = median(floor?.heap ?? []);
    report[workload] = names.map((name) => {
      const s = samples.get(name) ?? { ms: [], heap: [] };
      const ms = median(s.ms);
      const heap = median(s.heap);
      return {
        name,
        wallMs: Number(ms.toFixed(2)),
        wallRatio: Number((ms / floorMs).toFixed(2)),
        peakHeapKb: Math.round(heap),
        heapRatio: Number((heap / floorHeap).toFixed(2)),
      };
    });
  }
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify({ node: process.version, tasks: TASKS, concurrency: CONCURRENCY, rounds: ROUNDS, report }, null, 2));
    return;
  }
  for (const [workload, rows] of Object.entries(report)) {
    console.log(
      `\n${workload}: ${String(TASKS)} tasks, concurrency ${String(CONCURRENCY)} — Node ${process.version}, median of ${String(ROUNDS)}, ratios to the hand-written pool`,
    );
    console.table(rows);
  }
}

await main();
