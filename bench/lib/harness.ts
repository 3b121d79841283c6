/**
 * Shared pieces of the benchmark suite: command-line flags, interleaved
 * timing rounds with medians, forced GC and the JSON report format.
 *
 * Every perf bench measures its candidates in one process run, interleaved
 * round by round, and reports each as a ratio to a hand-written baseline
 * measured in the same run: absolute times on shared machines are noise.
 */
import { spawn } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import type { TargetSpec } from './targets.js';

/** The number after `--name` (`--calls 20000` or `--calls=20000`), if given. */
function numberFlag(name: string): number | undefined {
  const argv = process.argv;
  const at = argv.findIndex((arg) => arg === name || arg.startsWith(`${name}=`));
  const arg = argv[at];
  if (arg === undefined) return undefined;
  const raw = arg.includes('=') ? arg.slice(name.length + 1) : argv[at + 1];
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${name} takes a positive integer, got ${String(raw)}`);
  return value;
}

/**
 * `--quick`: a smoke run (fewer calls and rounds) for `npm test`. `--json`: print the report as JSON.
 * `--calls N` / `--rounds N`: override a bench's calls per round and rounds (a small run by hand).
 */
export const flags = {
  quick: process.argv.includes('--quick'),
  json: process.argv.includes('--json'),
  calls: numberFlag('--calls'),
  rounds: numberFlag('--rounds'),
};

export const median = (values: readonly number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

export const round = (value: number, digits = 2): number => Number(value.toFixed(digits));

const gcFn = (globalThis as { gc?: () => void }).gc;

/** Two passes: weakly held objects (signals, timers) need a second GC to be freed. */
export function fullGc(): void {
  if (gcFn === undefined) throw new Error('run with --expose-gc (node --expose-gc --import tsx bench/<file>.ts)');
  gcFn();
  gcFn();
}

export const hasGc = (): boolean => gcFn !== undefined;

export function abortListeners(signal: AbortSignal): number {
  return getEventListeners(signal, 'abort').length;
}

export function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
}

/** Microseconds per call of `calls` sequential awaited calls. */
export async function usPerCall(run: () => Promise<unknown>, calls: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < calls; i++) await run();
  return ((performance.now() - started) * 1000) / calls;
}

export interface TimedRow {
  name: string;
  usPerCall: number;
  ratio: number;
}

/**
 * Times every candidate `rounds` times, interleaved so drift in machine load
 * hits them all alike, after one warm-up pass; returns medians and ratios to
 * the candidate named `baseline`.
 */
export async function timeCandidates(
  candidates: Record<string, () => Promise<unknown>>,
  baseline: string,
  calls: number,
  rounds: number,
): Promise<TimedRow[]> {
  const names = Object.keys(candidates);
  if (!names.includes(baseline)) throw new Error(`no baseline ${baseline}`);
  const samples = new Map<string, number[]>(names.map((name) => [name, []]));
  const warmCalls = Math.max(1, Math.floor(calls / 4));
  for (const name of names) await usPerCall(candidates[name] as () => Promise<unknown>, warmCalls);
  for (let r = 0; r < rounds; r++) {
    for (const name of names)
      samples.get(name)?.push(await usPerCall(candidates[name] as () => Promise<unknown>, calls));
  }
  const floor = median(samples.get(baseline) ?? []);
  return names.map((name) => {
    const us = median(samples.get(name) ?? []);
    return { name, usPerCall: round(us, 4), ratio: round(us / floor) };
  });
}

/** A table to time: its candidates and the name of its baseline. */
export interface TableSpec {
  candidates: Record<string, () => Promise<unknown>>;
  baseline: string;
}

/**
 * {@link timeCandidates} in two passes over several tables: first, table by
 * table, the hand-written baselines and loopsafe (what the targets compare);
 * then, table by table, every candidate `apart(name)` selects (the peers)
 * beside the baseline again. A peer that leaves garbage or pending timers
 * behind (AbortSignal.timeout's timer lives until it fires) then cannot slow
 * the rows a target divides. A peer's ratio is to the baseline of its own pass.
 * Rows come back in the candidates' order.
 */
export async function timeInTwoPasses<K extends string>(
  tables: Record<K, TableSpec>,
  calls: number,
  rounds: number,
  apart: (name: string) => boolean,
): Promise<Record<K, TimedRow[]>> {
  const entries = Object.entries(tables) as [K, TableSpec][];
  const pick = ({ candidates, baseline }: TableSpec, second: boolean): Record<string, () => Promise<unknown>> =>
    Object.fromEntries(Object.entries(candidates).filter(([name]) => name === baseline || apart(name) === second));
  const rows = new Map<K, Map<string, TimedRow>>(entries.map(([key]) => [key, new Map()]));
  for (const second of [false, true]) {
    for (const [key, spec] of entries) {
      const picked = pick(spec, second);
      if (second && Object.keys(picked).length === 1) continue;
      for (const row of await timeCandidates(picked, spec.baseline, calls, rounds)) {
        if (!(second && row.name === spec.baseline)) rows.get(key)?.set(row.name, row);
      }
    }
  }
  return Object.fromEntries(
    entries.map(([key, spec]) => [key, Object.keys(spec.candidates).flatMap((name) => rows.get(key)?.get(name) ?? [])]),
  ) as Record<K, TimedRow[]>;
}

/**
 * For a ratio target: the two rows of `tables[table]` whose `field` it divides,
 * so that a later run can recompute the same candidate against another
 * baseline row (see bench/report.ts, "against the committed figures").
 */
export interface RatioOf {
  table: string;
  candidate: string;
  baseline: string;
  /** `usPerCall` or `wallMs`. */
  field: string;
}

/** A measured target (its definition is in targets.ts): met when `value <= limit`. */
export interface Target {
  id: string;
  description: string;
  value: number;
  limit: number;
  unit: string;
  met: boolean;
  ratioOf?: RatioOf;
}

export function target(spec: TargetSpec, value: number, ratioOf?: RatioOf): Target {
  return {
    id: spec.id,
    description: spec.description,
    value: round(value, 3),
    limit: spec.limit,
    unit: spec.unit,
    met: value <= spec.limit,
    ...(ratioOf === undefined ? {} : { ratioOf }),
  };
}

/** `field` of the row named `name` in `rows` (NaN when absent). */
export function rowValue(rows: readonly unknown[], name: string, field: string): number {
  const row = rows.find((r) => (r as { name?: unknown }).name === name) as Record<string, unknown> | undefined;
  const value = row?.[field];
  return typeof value === 'number' ? value : Number.NaN;
}

/** A ratio target: `candidate / baseline` over `field` of two rows of `tables[table]`. */
export function ratioTarget(
  spec: TargetSpec,
  tables: Record<string, unknown[]>,
  table: string,
  candidate: string,
  baseline: string,
  field = 'usPerCall',
): Target {
  const rows = tables[table] ?? [];
  return target(spec, rowValue(rows, candidate, field) / rowValue(rows, baseline, field), {
    table,
    candidate,
    baseline,
    field,
  });
}

/** The JSON every bench prints with `--json`; the runner collects them into bench/results/<runtime>/. */
export interface BenchReport {
  bench: string;
  node: string;
  quick: boolean;
  params: Record<string, unknown>;
  tables: Record<string, unknown[]>;
  targets: Target[];
  /** Hard failures (a hang, a leak): the quick run exits non-zero on any. Never a timing ratio. */
  failures: string[];
  notes: string[];
  /** Added by bench/run.ts when it writes the file: when the run finished (ISO 8601). */
  date?: string;
  /**
   * Set on figures measured before issue 13 (previous baselines and targets): the report shows
   * their tables with this caveat and none of their targets.
   */
  legacy?: string;
}

/** A target as committed, and where it comes from. */
export interface PreviousTarget extends Target {
  source: string;
}

/**
 * bench/results/<runtime>/previous.json: the targets as committed before the
 * run that wrote the results beside it (bench/run.ts takes them from git HEAD),
 * so the report can show whether a figure got worse.
 */
export interface PreviousFigures {
  /** Where the figures come from, in a few words (the report quotes it). */
  source?: string;
  note: string;
  targets: PreviousTarget[];
}

export function emit(report: BenchReport, titles: Record<string, string> = {}): void {
  if (flags.json) {
    console.log(JSON.stringify(report));
  } else {
    console.log(`\n== ${report.bench} — Node ${report.node}${report.quick ? ' (quick)' : ''}`);
    for (const [name, rows] of Object.entries(report.tables)) {
      console.log(`\n${titles[name] ?? name}`);
      console.table(rows);
    }
    for (const t of report.targets) {
      console.log(
        `${t.met ? 'MET   ' : 'MISSED'} ${t.description}: ${String(t.value)}${t.unit} (target ≤ ${String(t.limit)}${t.unit})`,
      );
    }
    for (const note of report.notes) console.log(`note: ${note}`);
    for (const failure of report.failures) console.error(`FAILED: ${failure}`);
  }
  if (report.failures.length > 0) process.exitCode = 1;
}

/**
 * Compiles a bench file the way `dist/` is built (esbuild, target `node20`,
 * no `keepNames`) into one module under `node_modules/.cache/loopsafe-bench/`,
 * the library's source bundled in and packages left external. tsx, which the
 * files are written for, compiles with `keepNames`: every named closure made
 * per call (`{ onTimeout: () => … }`) then costs an `Object.defineProperty`,
 * which the published build never pays, and which peers loaded from
 * `node_modules` never pay either.
 */
export async function compileBench(file: string): Promise<string> {
  const { build } = await import('esbuild');
  const root = resolvePath(dirname(file), '..');
  const out = join(root, 'node_modules', '.cache', 'loopsafe-bench', `${basename(file, '.ts')}.mjs`);
  await build({
    entryPoints: [file],
    outfile: out,
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'error',
  });
  return out;
}

/**
 * Runs a bench script in a child Node process (with `--expose-gc`) and parses
 * the JSON on the last line it prints. A TypeScript file is compiled first,
 * as the published build is (see compileBench). Each bench and scenario
 * variant gets a fresh process, so one cannot warm up or pollute another.
 *
 * @param file - The script to run: a `.ts` bench file, or a compiled one.
 * @param args - Its arguments.
 * @param nodeBinary - The Node binary. @defaultValue the current one
 */
export async function runJsonChild<T>(
  file: string,
  args: readonly string[],
  nodeBinary = process.execPath,
): Promise<T> {
  const script = file.endsWith('.ts') ? await compileBench(file) : file;
  return new Promise((resolve, reject) => {
    const child = spawn(nodeBinary, ['--no-warnings', '--expose-gc', script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      try {
        resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '') as T);
      } catch {
        reject(new Error(`${file} ${args.join(' ')} exited ${String(code)}:\n${err}${out}`));
      }
    });
  });
}
