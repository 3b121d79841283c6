/**
 * What the `loopsafe:scope` TracingChannel costs.
 *
 * - **Off** (nobody subscribed): `withTimeout(fn)` of this build against the
 *   same call on the engine before the tracing hook (the sources at
 *   `BEFORE_REV`, bundled here the same way), and against this build with the
 *   hook compiled out (`trace.js` swapped for the browser build's, which
 *   traces nothing): the hook's own read. All three are bundles loaded into
 *   this one process and timed interleaved, round by round.
 * - **On** (`loopsafe/otel` instrumenting, real SDK: a BasicTracerProvider
 *   and the AsyncLocalStorageContextManager): a named `withTimeout` per span,
 *   against the same call wrapped by hand in `tracer.startActiveSpan` (what a
 *   user writes without loopsafe/otel), and against the call untraced.
 *
 * Run: node --import tsx bench/tracing.bench.ts   (--quick for a smoke run, --json for machine-readable output)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { context, SpanStatusCode, type Span } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { build, type Plugin } from 'esbuild';
import { withTimeout } from '../src/index.js';
import { instrument } from '../src/otel.js';
import { emit, flags, median, ratioTarget, round, usPerCall, type TimedRow } from './lib/harness.js';
import { targets } from './lib/targets.js';

const CALLS = flags.calls ?? (flags.quick ? 5_000 : 50_000);
const ROUNDS = flags.rounds ?? (flags.quick ? 1 : 15);
/** Child processes the "off" tables are measured in (see measureOffInChildren). */
const PROCESSES = flags.quick ? 1 : 5;
const MS = 3_600_000;
/** The last commit before the tracing hook (issue 16). */
const BEFORE_REV = '0299cf00b1c4399b14d7c52ea0945126bc4efde0';

const BEFORE = 'loopsafe withTimeout(fn), before the tracing hook';
const NOW = 'loopsafe withTimeout(fn)';
const UNTRACED = 'withTimeout(fn, { name }), not instrumented';
const BY_HAND = 'hand-made span: tracer.startActiveSpan around withTimeout';
const OTEL = 'loopsafe/otel: withTimeout(fn, { name })';

/** The repository root: benches run from it (`npm run bench`, `npx tsx bench/run.ts`). */
const root = process.cwd();

type OffTable = 'off' | 'offRetry' | 'offGather';
type Lib = Pick<typeof import('../src/index.js'), 'withTimeout' | 'retry' | 'safeGather'>;

/** Bundles `entry` (a src/index.ts) into one ESM file and loads it: an engine of its own. */
async function load(entry: string, out: string, plugins: Plugin[] = []): Promise<Lib> {
  await build({
    entryPoints: [entry],
    outfile: out,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'error',
    plugins,
  });
  return (await import(pathToFileURL(out).href)) as Lib;
}

/** This build's `trace.js` replaced by `trace.browser.ts`: the hook compiled out. */
const noHook: Plugin = {
  name: 'no-tracing-hook',
  setup(builder) {
    builder.onResolve({ filter: /\/trace\.js$/ }, (args) => ({
      path: resolve(args.resolveDir, args.path.replace(/\.js$/, '.browser.ts')),
    }));
  },
};

/**
 * Times each candidate `rounds` times, interleaved (alternately forward and backward), each run
 * between its own setup and teardown; medians, and ratios to `baseline`.
 */
async function timeWithSetup(
  candidates: Record<string, { run: () => Promise<unknown>; setup?: () => () => void }>,
  baseline: string,
): Promise<TimedRow[]> {
  const names = Object.keys(candidates);
  const samples = new Map<string, number[]>(names.map((name) => [name, []]));
  const once = async (name: string, calls: number): Promise<number> => {
    const candidate = candidates[name] as { run: () => Promise<unknown>; setup?: () => () => void };
    const teardown = candidate.setup?.();
    try {
      return await usPerCall(candidate.run, calls);
    } finally {
      teardown?.();
    }
  };
  for (const name of names) await once(name, Math.max(1, Math.floor(CALLS / 4)));
  // Forward, then backward, round by round: no candidate always runs first (or right after another).
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of r % 2 === 0 ? names : [...names].reverse()) samples.get(name)?.push(await once(name, CALLS));
  }
  const floor = median(samples.get(baseline) ?? []);
  return names.map((name) => {
    const us = median(samples.get(name) ?? []);
    return { name, usPerCall: round(us, 4), ratio: round(us / floor) };
  });
}

/** The "off" tables, measured in this process: each call on each bundle, the first bundle its baseline. */
async function measureOff(work: string, notes: string[]): Promise<Record<OffTable, TimedRow[]>> {
  const fn = (): Promise<number> => Promise.resolve(1);
  const libs: [string, Lib][] = [];
  try {
    execFileSync('sh', ['-c', `git -C "${root}" archive ${BEFORE_REV} src | tar -x -C "${work}"`]);
    libs.push(['before the tracing hook', await load(join(work, 'src', 'index.ts'), join(work, 'before.mjs'))]);
  } catch (error) {
    notes.push(`no "before" rows: the sources at ${BEFORE_REV} could not be read (${String(error)})`);
  }
  libs.push(['hook compiled out', await load(join(root, 'src', 'index.ts'), join(work, 'no-hook.mjs'), [noHook])]);
  libs.push(['', await load(join(root, 'src', 'index.ts'), join(work, 'now.mjs'))]);
  const offTable = async (call: string, run: (lib: Lib) => Promise<unknown>): Promise<TimedRow[]> => {
    const candidates = Object.fromEntries(
      libs.map(([label, lib]) => [
        label === '' ? `loopsafe ${call}` : `loopsafe ${call}, ${label}`,
        { run: () => run(lib) },
      ]),
    );
    return timeWithSetup(candidates, Object.keys(candidates)[0] as string);
  };
  return {
    off: await offTable('withTimeout(fn)', (lib) => lib.withTimeout(MS, fn)),
    offRetry: await offTable('retry(fn, { timeout })', (lib) => lib.retry(fn, { timeout: MS })),
    offGather: await offTable('safeGather([fn, fn])', (lib) => lib.safeGather([fn, fn])),
  };
}

/**
 * The "off" tables over {@link PROCESSES} child processes of this script, one after the other: a
 * bundle's speed varies from process to process (code placement, GC timing) by more than the check
 * being measured, so each row is the median over the processes, and `offRuns` lists each process's
 * ratio for the target's row.
 */
function measureOffInChildren(): {
  tables: Record<OffTable, TimedRow[]>;
  runs: number[];
  notes: string[];
} {
  const script = process.argv[1] as string;
  const passed = process.argv.slice(2).filter((arg) => arg !== '--json');
  const results: { tables: Record<OffTable, TimedRow[]>; notes: string[] }[] = [];
  for (let i = 0; i < PROCESSES; i++) {
    const out = execFileSync(process.execPath, [...process.execArgv, script, ...passed, '--off-child'], {
      cwd: root,
      encoding: 'utf8',
      maxBuffer: 16 * 1024 * 1024,
    });
    results.push(
      JSON.parse(out.trim().split('\n').at(-1) ?? '') as { tables: Record<OffTable, TimedRow[]>; notes: string[] },
    );
  }
  const keys: OffTable[] = ['off', 'offRetry', 'offGather'];
  const tables = Object.fromEntries(
    keys.map((key) => [
      key,
      (results[0]?.tables[key] ?? []).map((row, index) => ({
        name: row.name,
        usPerCall: round(median(results.map((result) => result.tables[key][index]?.usPerCall ?? Number.NaN)), 4),
        ratio: round(median(results.map((result) => result.tables[key][index]?.ratio ?? Number.NaN))),
      })),
    ]),
  ) as Record<OffTable, TimedRow[]>;
  const runs = results.map((result) => {
    const rows = result.tables.off;
    return round(
      (rows.find((row) => row.name === NOW)?.usPerCall ?? Number.NaN) / (rows[0]?.usPerCall ?? Number.NaN),
      3,
    );
  });
  return { tables, runs, notes: [...new Set(results.flatMap((result) => result.notes))] };
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'loopsafe-tracing-bench-'));
  const notes: string[] = [];
  const inFlight = setTimeout(() => undefined, MS).unref();
  try {
    if (process.argv.includes('--off-child')) {
      const tables = await measureOff(work, notes);
      console.log(JSON.stringify({ tables, notes }));
      return;
    }
    const fn = (): Promise<number> => Promise.resolve(1);
    const off = measureOffInChildren();
    notes.push(...off.notes);
    const untraced = off.tables.off;
    const baselineOff = untraced[0]?.name ?? BEFORE;

    const contextManager = new AsyncLocalStorageContextManager();
    context.setGlobalContextManager(contextManager);
    const tracerProvider = new BasicTracerProvider();
    const tracer = tracerProvider.getTracer('bench');
    const named = { name: 'op' };
    const traced = await timeWithSetup(
      {
        [UNTRACED]: { run: () => withTimeout(MS, fn, named) },
        [BY_HAND]: {
          run: () =>
            // The same span loopsafe/otel makes: its timeout and outcome attributes, ERROR on a failure.
            tracer.startActiveSpan('op', { attributes: { 'loopsafe.timeout_ms': MS } }, (span: Span) =>
              withTimeout(MS, fn, named).then(
                (value) => {
                  span.setAttribute('loopsafe.outcome', 'ok');
                  span.end();
                  return value;
                },
                (error: unknown) => {
                  span.setAttribute('loopsafe.outcome', 'error');
                  span.setStatus({ code: SpanStatusCode.ERROR });
                  span.end();
                  throw error;
                },
              ),
            ),
        },
        [OTEL]: {
          run: () => withTimeout(MS, fn, named),
          setup: () => {
            const instrumentation = instrument({ tracerProvider });
            return () => {
              instrumentation.dispose();
            };
          },
        },
      },
      UNTRACED,
    );
    context.disable();
    const cost = (name: string): number =>
      round(
        (traced.find((row) => row.name === name)?.usPerCall ?? Number.NaN) -
          (traced.find((row) => row.name === UNTRACED)?.usPerCall ?? Number.NaN),
        3,
      );
    const tables = {
      off: untraced,
      offRuns: off.runs.map((ratio, index) => ({ name: `process ${String(index + 1)}`, ratio })),
      offRetry: off.tables.offRetry,
      offGather: off.tables.offGather,
      on: traced,
      perScope: [
        { name: BY_HAND, usPerCall: cost(BY_HAND) },
        { name: OTEL, usPerCall: cost(OTEL) },
      ],
    };
    emit(
      {
        bench: 'tracing',
        node: process.version,
        quick: flags.quick,
        params: { calls: CALLS, rounds: ROUNDS, processes: PROCESSES, before: BEFORE_REV },
        tables,
        targets: [
          ratioTarget(targets.tracingOff, tables, 'off', NOW, baselineOff),
          ratioTarget(targets.tracingOtel, tables, 'on', OTEL, BY_HAND),
        ],
        failures: [],
        notes: [
          ...notes,
          `the "off" rows are three bundles of the engine loaded into one process, timed interleaved round by round (alternately forward and backward); each row is the median over ${String(PROCESSES)} such processes, run one after the other; nobody subscribes to loopsafe:scope`,
          'the "on" rows use a BasicTracerProvider without a span processor (spans are made, recorded and ended, not exported) and the AsyncLocalStorageContextManager; loopsafe/otel is instrumented only while its own row runs',
        ],
      },
      {
        off: `Nobody listening (µs per call; ratio to ${baselineOff}; medians over the processes)`,
        offRuns: `Nobody listening: withTimeout(fn) against ${baselineOff}, in each process`,
        offRetry: 'Nobody listening: retry (µs per call; ratio to the first row)',
        offGather: 'Nobody listening: safeGather (µs per call; ratio to the first row)',
        on: 'loopsafe/otel on (µs per call; ratio to the untraced call)',
        perScope: 'What a span costs per scope (µs, over the untraced call)',
      },
    );
  } finally {
    clearTimeout(inFlight);
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
