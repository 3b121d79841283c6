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
 * Also: fail-fast latency and how many running siblings each one aborts.
 *
 * Run: node --expose-gc --import tsx bench/gather.bench.ts   (--quick for a smoke run, --json for machine-readable output)
 */
import { Effect } from 'effect';
import pLimit from 'p-limit';
import pMap from 'p-map';
import { safeGather, safeGatherSettled } from '../src/gather.js';
import { emit, flags, round, target } from './lib/harness.js';

const TASKS = 10_000;
const CONCURRENCY = 100;
const ROUNDS = flags.quick ? 1 : 7;
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
  'p-limit': (tasks) => {
    const limit = pLimit(CONCURRENCY);
    return Promise.all(tasks.map((task) => limit(task)));
  },
  'effect Effect.forEach': (tasks) =>
    Effect.runPromise(
      Effect.forEach(tasks, (task) => Effect.tryPromise((signal) => task(signal)), { concurrency: CONCURRENCY }),
    ),
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

const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

/**
 * Fail-fast: tasks of 50 ms at concurrency 100, task 150 fails at 5 ms (while
 * 100 run). How long after the failure the caller sees the rejection, and how
 * many of the siblings running at that moment had their signal aborted.
 */
interface FailFastRow {
  name: string;
  rejectedAfterMs: number;
  runningAtFailure: number;
  siblingsAborted: number;
  stillRunningAtRejection: number;
}

type FailRunner = (tasks: ((signal?: AbortSignal) => Promise<number>)[]) => Promise<unknown>;

async function failFast(name: string, run: FailRunner): Promise<FailFastRow> {
  const FAIL_AT = 150;
  let running = 0;
  let failedAt = 0;
  let runningAtFailure = 0;
  let aborted = 0;
  const signals: AbortSignal[] = [];
  const tasks = Array.from(
    { length: 1_000 },
    (_, i) => (signal?: AbortSignal) =>
      new Promise<number>((resolve, reject) => {
        running++;
        if (signal !== undefined) signals.push(signal);
        const done = (): void => {
          running--;
        };
        const onAbort = (): void => {
          clearTimeout(timer);
          done();
          aborted++;
          reject(signal?.reason);
        };
        const timer = setTimeout(
          () => {
            signal?.removeEventListener('abort', onAbort);
            done();
            if (i === FAIL_AT) {
              failedAt = performance.now();
              runningAtFailure = running;
              reject(new Error('boom'));
            } else resolve(i);
          },
          i === FAIL_AT ? 5 : 50,
        );
        signal?.addEventListener('abort', onAbort, { once: true });
      }),
  );
  const error = await run(tasks).then(
    () => undefined,
    (e: unknown) => e,
  );
  const rejectedAt = performance.now();
  const stillRunning = running;
  if (!(error instanceof Error)) throw new Error(`${name}: did not reject`);
  await new Promise((resolve) => setTimeout(resolve, 80)); // let ignored siblings finish
  return {
    name,
    rejectedAfterMs: round(rejectedAt - failedAt, 3),
    runningAtFailure,
    siblingsAborted: aborted,
    stillRunningAtRejection: stillRunning,
  };
}

/** The hand-written pool, stopping at the first failure and aborting one shared controller. */
async function handWrittenFailFast(tasks: ((signal?: AbortSignal) => Promise<number>)[]): Promise<number[]> {
  const controller = new AbortController();
  const results = new Array<number>(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length && !controller.signal.aborted) {
      const i = next++;
      results[i] = await (tasks[i] as (signal?: AbortSignal) => Promise<number>)(controller.signal);
    }
  };
  try {
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  } catch (error) {
    controller.abort(error);
    throw error;
  }
  return results;
}

async function main(): Promise<void> {
  if (gc === undefined) throw new Error('run with --expose-gc: node --expose-gc --import tsx bench/gather.bench.ts');
  const names = Object.keys(candidates);
  const tables: Record<string, unknown[]> = {};
  const ratios: Record<string, Record<string, number>> = {};
  for (const [workload, work] of Object.entries(workloads)) {
    if (flags.quick && workload !== 'immediate') continue;
    const samples = new Map(names.map((name) => [name, { ms: [] as number[], heap: [] as number[] }]));
    for (const name of names) await measure(candidates[name] as Runner, work, false); // warm-up
    // Interleave candidates so drift in machine load hits them all alike; the
    // GC-heavy heap runs come after all the timed ones so they cannot skew them.
    for (let r = 0; r < ROUNDS; r++) {
      for (const name of names) samples.get(name)?.ms.push(await measure(candidates[name] as Runner, work, false));
    }
    for (let r = 0; r < (flags.quick ? 0 : ROUNDS); r++) {
      for (const name of names) samples.get(name)?.heap.push(await measure(candidates[name] as Runner, work, true));
    }
    const floor = samples.get('hand-written pool');
    const floorMs = median(floor?.ms ?? []);
    const floorHeap = median(floor?.heap ?? []);
    ratios[workload] = {};
    tables[workload] = names.map((name) => {
      const s = samples.get(name) ?? { ms: [], heap: [] };
      const ms = median(s.ms);
      const heap = median(s.heap);
      (ratios[workload] as Record<string, number>)[name] = ms / floorMs;
      return {
        name,
        wallMs: round(ms),
        ratio: round(ms / floorMs),
        peakHeapKb: Math.round(heap),
        heapRatio: round(heap / floorHeap),
      };
    });
  }
  const failRows = [
    await failFast('hand-written pool + shared AbortController', handWrittenFailFast),
    await failFast('loopsafe safeGather', (tasks) => safeGather(tasks, { concurrency: CONCURRENCY })),
    await failFast('p-map', (tasks) => pMap(tasks, (task) => task(), { concurrency: CONCURRENCY })),
    await failFast('p-limit', (tasks) => {
      const limit = pLimit(CONCURRENCY);
      return Promise.all(tasks.map((task) => limit(task)));
    }),
    await failFast('effect Effect.forEach', (tasks) =>
      Effect.runPromise(
        Effect.forEach(tasks, (task) => Effect.tryPromise((signal) => task(signal)), { concurrency: CONCURRENCY }),
      ),
    ),
  ];
  tables.failFast = failRows;
  const mineFail = failRows[1];
  const immediate = ratios.immediate ?? {};
  const failures: string[] = [];
  if (mineFail !== undefined && mineFail.stillRunningAtRejection !== 0) {
    failures.push(`safeGather rejected with ${String(mineFail.stillRunningAtRejection)} siblings still running`);
  }
  emit(
    {
      bench: 'gather',
      node: process.version,
      quick: flags.quick,
      params: { tasks: TASKS, concurrency: CONCURRENCY, rounds: ROUNDS },
      tables,
      targets: [
        target(
          'gather.pool',
          'safeGather vs hand-written pool (immediate workload)',
          immediate['loopsafe safeGather'] ?? Number.NaN,
          2,
        ),
        target(
          'gather.vsPMap',
          'safeGather vs p-map (immediate workload; must be < 1)',
          (immediate['loopsafe safeGather'] ?? Number.NaN) / (immediate['p-map'] ?? Number.NaN),
          0.999,
        ),
        target(
          'gather.failFast',
          'safeGather fail-fast: rejection after the failure',
          mineFail?.rejectedAfterMs ?? Number.NaN,
          1,
          ' ms',
        ),
        target(
          'gather.aborted',
          'safeGather fail-fast: running siblings not aborted',
          mineFail === undefined ? Number.NaN : mineFail.runningAtFailure - mineFail.siblingsAborted,
          0,
          '',
        ),
      ],
      failures,
      notes: [
        `${String(TASKS)} tasks at concurrency ${String(CONCURRENCY)}; wall time median of ${String(ROUNDS)}; peak heap = live heap (after a full GC) sampled every ${String(SAMPLE_EVERY)} tasks, minus the heap before`,
        'p-map and p-limit give tasks no signal: their siblings cannot be aborted, only abandoned',
      ],
    },
    {
      immediate: 'immediate workload (each task waits a macrotask)',
      microtask: 'microtask workload (pure overhead)',
      failFast: 'Fail-fast: 1,000 tasks of 50 ms at concurrency 100, one fails at 5 ms',
    },
  );
}

await main();
