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

/** `--quick`: a smoke run (fewer calls and rounds) for `npm test`. `--json`: print the report as JSON. */
export const flags = {
  quick: process.argv.includes('--quick'),
  json: process.argv.includes('--json'),
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
    return { name, usPerCall: round(us, 3), ratio: round(us / floor) };
  });
}

/** A target: `value` compared with `limit` (`<=` unless stated). */
export interface Target {
  id: string;
  description: string;
  value: number;
  limit: number;
  unit: string;
  met: boolean;
}

export function target(id: string, description: string, value: number, limit: number, unit = '×'): Target {
  return { id, description, value: round(value, 3), limit, unit, met: value <= limit };
}

/** The JSON every bench prints with `--json`; the runner collects them into bench/results/. */
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
 * Runs a TypeScript file in a child Node process (with `--expose-gc`, through
 * tsx) and parses the JSON on the last line it prints. Each bench and scenario
 * variant gets a fresh process, so one cannot warm up or pollute another.
 *
 * @param file - The script to run.
 * @param args - Its arguments.
 * @param nodeBinary - The Node binary. @defaultValue the current one
 */
export function runJsonChild<T>(file: string, args: readonly string[], nodeBinary = process.execPath): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(nodeBinary, ['--no-warnings', '--expose-gc', '--import', 'tsx', file, ...args], {
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
