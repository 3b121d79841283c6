/**
 * Wall time and peak heap of 10,000 tasks at concurrency 100: loopsafe's
 * safeGather / safeGatherSettled against hand-written pools, p-map, p-limit,
 * effect and an unbounded Promise.all — measured in one process run,
 * candidates interleaved, median of ROUNDS.
 *
 * The hand-written pools are the plainest, fastest a strong engineer writes:
 * `limit` lanes, each starting the next task from the settlement callback of
 * the last (no async function, no closure per task). The baseline,
 * `hand-written pool + AbortController`, gives every task an AbortController of
 * its own, as safeGather gives every task a signal of its own, and aborts the
 * running ones at the first failure (the fail-fast rows use the cheapest
 * form: one shared controller). The pool with one AbortController per task
 * and async workers, the baseline before issue 13,
 * stays as a row marked "before", so the figures committed then can still be
 * compared with.
 *
 * Two workloads: `immediate` (each task waits one macrotask, like a fast I/O
 * call) and `microtask` (each task awaits a resolved promise: pure overhead).
 *
 * Wall time comes from runs that do nothing else. Peak heap comes from
 * separate runs: the live heap (heapUsed right after a full GC) sampled at
 * every 500th task start and end, minus the live heap before the run — what
 * the gather actually keeps alive, not the garbage it has not yet collected.
 *
 * Fail-fast: how long after one task fails the caller sees the rejection, and
 * whether every sibling running at the failure had its signal aborted by then —
 * with 99 running siblings (1,000 tasks at concurrency 100) and with 9,999
 * (10,000 tasks at concurrency 10,000).
 *
 * Run: node --expose-gc --import tsx bench/gather.bench.ts   (--quick for a smoke run, --json for machine-readable output)
 */
import { setMaxListeners } from 'node:events';
import { Effect } from 'effect';
import pLimit from 'p-limit';
import pMap from 'p-map';
import { safeGather, safeGatherSettled } from '../src/gather.js';
import { emit, flags, median, ratioTarget, round, target } from './lib/harness.js';
import { targets } from './lib/targets.js';

const TASKS = 10_000;
const CONCURRENCY = 100;
const ROUNDS = flags.rounds ?? (flags.quick ? 1 : 7);
const SAMPLE_EVERY = 500;
const FAIL_ROUNDS = flags.rounds ?? (flags.quick ? 1 : 5);

const POOL = 'hand-written pool';
const POOL_ABORT = 'hand-written pool + AbortController';
const POOL_ABORT_BEFORE = 'hand-written pool + AbortController (before: async workers, a controller per task)';

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

/** The floor without cancellation: `limit` lanes, each starting the next task when its last one fulfils. */
function handWrittenPool<T>(tasks: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const n = tasks.length;
    const results = new Array<T>(n);
    let next = 0;
    let done = 0;
    if (n === 0) {
      resolve(results);
      return;
    }
    const lane = (): void => {
      let i = next++;
      const onValue = (value: T): void => {
        results[i] = value;
        if (++done === n) resolve(results);
        else if (next < n) {
          i = next++;
          (tasks[i] as () => Promise<T>)().then(onValue, reject);
        }
      };
      (tasks[i] as () => Promise<T>)().then(onValue, reject);
    };
    for (let k = Math.min(limit, n); k > 0; k--) lane();
  });
}

/**
 * The baseline, as issue 13 defines it: the same pool, each task given an
 * AbortController of its own (what safeGather gives: a signal per task, so a
 * listener a task leaves behind dies with it); the first failure aborts the
 * running ones, rejects at once and starts no more tasks.
 */
function handWrittenPoolWithAbort<T>(
  tasks: readonly ((signal: AbortSignal) => Promise<T>)[],
  limit: number,
): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const n = tasks.length;
    const results = new Array<T>(n);
    const running = new Set<AbortController>();
    let next = 0;
    let done = 0;
    let failed = false;
    if (n === 0) {
      resolve(results);
      return;
    }
    const onError = (error: unknown): void => {
      if (failed) return;
      failed = true;
      for (const controller of running) controller.abort(error);
      reject(error);
    };
    const lane = (): void => {
      let i = next++;
      let controller = new AbortController();
      const onValue = (value: T): void => {
        running.delete(controller);
        results[i] = value;
        if (++done === n) resolve(results);
        else if (next < n && !failed) {
          i = next++;
          controller = new AbortController();
          running.add(controller);
          (tasks[i] as (signal: AbortSignal) => Promise<T>)(controller.signal).then(onValue, onError);
        }
      };
      running.add(controller);
      (tasks[i] as (signal: AbortSignal) => Promise<T>)(controller.signal).then(onValue, onError);
    };
    for (let k = Math.min(limit, n); k > 0; k--) lane();
  });
}

/** The same pool, every task given one shared signal: cancellation at its cheapest, for the fail-fast rows. */
function handWrittenPoolWithSharedAbort<T>(
  tasks: readonly ((signal: AbortSignal) => Promise<T>)[],
  limit: number,
): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const controller = new AbortController();
    const { signal } = controller;
    setMaxListeners(0, signal); // every task may listen to the one signal
    const n = tasks.length;
    const results = new Array<T>(n);
    let next = 0;
    let done = 0;
    let failed = false;
    if (n === 0) {
      resolve(results);
      return;
    }
    const onError = (error: unknown): void => {
      if (failed) return;
      failed = true;
      controller.abort(error);
      reject(error);
    };
    const lane = (): void => {
      let i = next++;
      const onValue = (value: T): void => {
        results[i] = value;
        if (++done === n) resolve(results);
        else if (next < n && !failed) {
          i = next++;
          (tasks[i] as (signal: AbortSignal) => Promise<T>)(signal).then(onValue, onError);
        }
      };
      (tasks[i] as (signal: AbortSignal) => Promise<T>)(signal).then(onValue, onError);
    };
    for (let k = Math.min(limit, n); k > 0; k--) lane();
  });
}

/** The baseline before issue 13: async workers pulling indices from a shared counter, one AbortController per task. */
async function handWrittenPoolBefore(tasks: Task[], limit: number): Promise<number[]> {
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
  [POOL]: (tasks) => handWrittenPool(tasks, CONCURRENCY),
  [POOL_ABORT]: (tasks) => handWrittenPoolWithAbort(tasks, CONCURRENCY),
  [POOL_ABORT_BEFORE]: (tasks) => handWrittenPoolBefore(tasks, CONCURRENCY),
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

/** The rows the targets divide, timed in the first pass (see main). */
const firstPass = new Set([
  POOL,
  POOL_ABORT,
  POOL_ABORT_BEFORE,
  'loopsafe safeGather',
  'loopsafe safeGatherSettled',
  'p-map',
]);

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

interface FailFastCase {
  tasks: number;
  concurrency: number;
  /** The task that fails, `failAfterMs` after it starts; it must start while `concurrency` tasks run. */
  failAt: number;
  failAfterMs: number;
  /** How long every other task runs unless aborted (Infinity: until aborted). */
  siblingMs: number;
}

/** 1,000 tasks of 50 ms at concurrency 100: task 150 starts at ~50 ms and fails 5 ms later, while 99 siblings run. */
const FAIL_99: FailFastCase = { tasks: 1_000, concurrency: 100, failAt: 150, failAfterMs: 5, siblingMs: 50 };
/**
 * 10,000 tasks at concurrency 10,000: the last one to start fails 5 ms later,
 * while 9,999 siblings run. Siblings end only when aborted, so a slow start
 * (10,000 listeners on one signal take long on Node 20) cannot end them first.
 */
const FAIL_9999: FailFastCase = {
  tasks: 10_000,
  concurrency: 10_000,
  failAt: 9_999,
  failAfterMs: 5,
  siblingMs: Infinity,
};

interface FailFastRow {
  name: string;
  rejectedAfterMs: number;
  runningAtFailure: number;
  /** Of the siblings running at the failure, how many had no aborted signal when the caller saw the rejection. */
  notAbortedAtRejection: number;
  stillRunningAtRejection: number;
}

type FailTask = (signal?: AbortSignal) => Promise<number>;
type FailRunner = (tasks: FailTask[], concurrency: number) => Promise<unknown>;

/** One fail-fast run: the latency from the failure to the caller's rejection, and what was aborted by then. */
async function failFastOnce(name: string, run: FailRunner, c: FailFastCase): Promise<Omit<FailFastRow, 'name'>> {
  const live = new Set<{ signal: AbortSignal | undefined }>();
  let failedAt = 0;
  let siblings: { signal: AbortSignal | undefined }[] = [];
  const tasks = Array.from(
    { length: c.tasks },
    (_, i): FailTask =>
      (signal) =>
        new Promise<number>((resolve, reject) => {
          const entry = { signal };
          live.add(entry);
          let timer: NodeJS.Timeout | undefined;
          const onAbort = (): void => {
            clearTimeout(timer);
            live.delete(entry);
            reject(signal?.reason);
          };
          const ms = i === c.failAt ? c.failAfterMs : c.siblingMs;
          if (Number.isFinite(ms))
            timer = setTimeout(() => {
              signal?.removeEventListener('abort', onAbort);
              live.delete(entry);
              if (i !== c.failAt) {
                resolve(i);
                return;
              }
              siblings = [...live];
              failedAt = performance.now();
              reject(new Error('boom'));
            }, ms);
          signal?.addEventListener('abort', onAbort, { once: true });
        }),
  );
  let rejectedAt = 0;
  let notAborted = -1;
  let stillRunning = -1;
  const rejected = await run(tasks, c.concurrency).then(
    () => false,
    () => {
      rejectedAt = performance.now();
      notAborted = siblings.filter((s) => s.signal?.aborted !== true).length;
      stillRunning = live.size;
      return true;
    },
  );
  if (!rejected) throw new Error(`${name}: did not reject`);
  // Let siblings that were not aborted finish (those that run until aborted are left behind).
  if (Number.isFinite(c.siblingMs)) await new Promise((resolve) => setTimeout(resolve, c.siblingMs + 30));
  return {
    rejectedAfterMs: rejectedAt - failedAt,
    runningAtFailure: siblings.length,
    notAbortedAtRejection: notAborted,
    stillRunningAtRejection: stillRunning,
  };
}

/** FAIL_ROUNDS runs: the median latency, the worst counts. */
async function failFast(name: string, run: FailRunner, c: FailFastCase): Promise<FailFastRow> {
  const runs = [];
  for (let r = 0; r < FAIL_ROUNDS; r++) runs.push(await failFastOnce(name, run, c));
  return {
    name,
    rejectedAfterMs: round(median(runs.map((r) => r.rejectedAfterMs)), 3),
    runningAtFailure: Math.min(...runs.map((r) => r.runningAtFailure)),
    notAbortedAtRejection: Math.max(...runs.map((r) => r.notAbortedAtRejection)),
    stillRunningAtRejection: Math.max(...runs.map((r) => r.stillRunningAtRejection)),
  };
}

const failRunners: Record<string, FailRunner> = {
  'hand-written pool + shared AbortController': (tasks, limit) => handWrittenPoolWithSharedAbort(tasks, limit),
  'loopsafe safeGather': (tasks, concurrency) => safeGather(tasks, { concurrency }),
  'p-map': (tasks, concurrency) => pMap(tasks, (task) => task(), { concurrency }),
  'p-limit': (tasks, concurrency) => {
    const limit = pLimit(concurrency);
    return Promise.all(tasks.map((task) => limit(task)));
  },
  'effect Effect.forEach': (tasks, concurrency) =>
    Effect.runPromise(Effect.forEach(tasks, (task) => Effect.tryPromise((signal) => task(signal)), { concurrency })),
};
/** Only the candidates that abort their siblings run with 9,999 of them (the others would leave them all running). */
const failRunners9999 = ['hand-written pool + shared AbortController', 'loopsafe safeGather'];

async function main(): Promise<void> {
  if (gc === undefined) throw new Error('run with --expose-gc: node --expose-gc --import tsx bench/gather.bench.ts');
  const names = Object.keys(candidates);
  // Two passes: the rows the targets divide, then the other peers beside the baseline again, so
  // the garbage those leave (effect's, p-limit's) cannot land in a target row's run as a major GC.
  const passes = [
    names.filter((name) => firstPass.has(name)),
    [POOL_ABORT, ...names.filter((name) => !firstPass.has(name))],
  ];
  const tables: Record<string, unknown[]> = {};
  for (const [workload, work] of Object.entries(workloads)) {
    if (flags.quick && workload !== 'immediate') continue;
    const wall = new Map<string, { ms: number; ratio: number }>();
    for (const pass of passes) {
      const samples = new Map(pass.map((name) => [name, [] as number[]]));
      for (const name of pass) await measure(candidates[name] as Runner, work, false); // warm-up
      // Interleave candidates so drift in machine load hits them all alike.
      for (let r = 0; r < ROUNDS; r++) {
        for (const name of pass) samples.get(name)?.push(await measure(candidates[name] as Runner, work, false));
      }
      const floorMs = median(samples.get(POOL_ABORT) ?? []);
      for (const name of pass) {
        const ms = median(samples.get(name) ?? []);
        if (!wall.has(name)) wall.set(name, { ms, ratio: ms / floorMs });
      }
    }
    // The GC-heavy heap runs come after all the timed ones so they cannot skew them.
    const heap = new Map(names.map((name) => [name, [] as number[]]));
    for (let r = 0; r < (flags.quick ? 0 : ROUNDS); r++) {
      for (const name of names) heap.get(name)?.push(await measure(candidates[name] as Runner, work, true));
    }
    const floorHeap = median(heap.get(POOL_ABORT) ?? []);
    tables[workload] = names.map((name) => {
      const peak = median(heap.get(name) ?? []);
      return {
        name,
        wallMs: round(wall.get(name)?.ms ?? Number.NaN, 3),
        ratio: round(wall.get(name)?.ratio ?? Number.NaN),
        peakHeapKb: Math.round(peak),
        heapRatio: round(peak / floorHeap),
      };
    });
  }
  const failRows: FailFastRow[] = [];
  for (const [name, run] of Object.entries(failRunners)) failRows.push(await failFast(name, run, FAIL_99));
  const failRows9999: FailFastRow[] = [];
  for (const name of failRunners9999)
    failRows9999.push(await failFast(name, failRunners[name] as FailRunner, FAIL_9999));
  tables.failFast = failRows;
  tables.failFast9999 = failRows9999;
  const failures: string[] = [];
  const mine = (rows: FailFastRow[]): FailFastRow | undefined => rows.find((r) => r.name === 'loopsafe safeGather');
  for (const [label, row] of [
    ['99 siblings', mine(failRows)],
    ['9,999 siblings', mine(failRows9999)],
  ] as const) {
    if (row !== undefined && row.stillRunningAtRejection !== 0)
      failures.push(
        `safeGather (${label}) rejected with ${String(row.stillRunningAtRejection)} siblings still running`,
      );
  }
  const fail99 = mine(failRows);
  const fail9999 = mine(failRows9999);
  emit(
    {
      bench: 'gather',
      node: process.version,
      quick: flags.quick,
      params: {
        tasks: TASKS,
        concurrency: CONCURRENCY,
        rounds: ROUNDS,
        failFastRounds: FAIL_ROUNDS,
        failFast: FAIL_99,
        failFast9999: { ...FAIL_9999, siblingMs: 'until aborted' },
      },
      tables,
      targets: [
        ratioTarget(targets.gatherPool, tables, 'immediate', 'loopsafe safeGather', POOL_ABORT, 'wallMs'),
        ratioTarget(targets.gatherPMap, tables, 'immediate', 'loopsafe safeGather', 'p-map', 'wallMs'),
        target(targets.failFast99, fail99?.rejectedAfterMs ?? Number.NaN),
        target(targets.failFast99Aborted, fail99?.notAbortedAtRejection ?? Number.NaN),
        target(targets.failFast9999, fail9999?.rejectedAfterMs ?? Number.NaN),
        target(targets.failFast9999Aborted, fail9999?.notAbortedAtRejection ?? Number.NaN),
      ],
      failures,
      notes: [
        `${String(TASKS)} tasks at concurrency ${String(CONCURRENCY)}; wall time median of ${String(ROUNDS)}; ratios to ${POOL_ABORT}; peak heap = live heap (after a full GC) sampled every ${String(SAMPLE_EVERY)} tasks, minus the heap before`,
        `fail-fast: median latency of ${String(FAIL_ROUNDS)} runs from the failing task's rejection to the caller's rejection handler; counts are the worst run's`,
        "wall time in two passes: the hand-written pools, loopsafe and p-map first, then p-limit, effect and Promise.all beside the baseline again (their ratio to that pass's baseline), so the garbage they leave cannot land in a target row's run",
        'p-map and p-limit give tasks no signal: their siblings cannot be aborted, only abandoned',
        'the row marked "before" is the hand-written baseline used before issue 13, kept so the figures committed then stay comparable',
      ],
    },
    {
      immediate: 'immediate workload (each task waits a macrotask)',
      microtask: 'microtask workload (pure overhead)',
      failFast: 'Fail-fast: 1,000 tasks of 50 ms at concurrency 100, one fails while 99 siblings run',
      failFast9999: 'Fail-fast: 10,000 tasks at concurrency 10,000, one fails while 9,999 siblings run',
    },
  );
}

await main();
