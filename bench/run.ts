/**
 * The benchmark suite runner.
 *
 *   npm run bench         — the full run: the nine deadlock scenarios and every perf bench, each in
 *                           its own process; writes bench/results/*.json, then bench/report.ts turns
 *                           them into the summary (bench/README.md, docs/benchmarks.md) and the SVG charts.
 *                           The ALS bench also runs on Node 24, installed on demand (scripts/lib/runtimes.ts).
 *   npm run bench:quick   — the smoke run in `npm test`: same scenarios, perf benches with few calls,
 *                           nothing downloaded, nothing written. Exits non-zero when a loopsafe run
 *                           hangs or leaks; timing ratios are printed, never failed on.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installRuntime } from '../scripts/lib/runtimes.js';
import { flags, runJsonChild, type BenchReport } from './lib/harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const resultsDir = join(here, 'results');
function runBench(file: string, nodeBinary = process.execPath): Promise<BenchReport> {
  return runJsonChild<BenchReport>(join(here, file), ['--json', ...(flags.quick ? ['--quick'] : [])], nodeBinary);
}

async function main(): Promise<void> {
  const started = performance.now();
  const reports: BenchReport[] = [];
  const step = async (label: string, run: () => Promise<BenchReport>): Promise<void> => {
    const t = performance.now();
    process.stdout.write(`${label} … `);
    const report = await run();
    reports.push(report);
    console.log(
      `${((performance.now() - t) / 1000).toFixed(1)} s${report.failures.length > 0 ? ` — ${String(report.failures.length)} FAILURE(S)` : ''}`,
    );
  };
  await step('deadlock scenarios', () => runBench('demo.ts'));
  await step('timeout', () => runBench('wait-for.bench.ts'));
  await step('retry', () => runBench('retry.bench.ts'));
  await step('gather', () => runBench('gather.bench.ts'));
  await step('memory', () => runBench('memory.bench.ts'));
  await step(`ambient propagation (${process.version})`, () => runBench('als.bench.ts'));
  if (!flags.quick) {
    const node24 = installRuntime('node24');
    if ('unavailable' in node24) console.log(`ambient propagation on Node 24: skipped, ${node24.unavailable}`);
    else
      await step('ambient propagation (Node 24)', async () => ({
        ...(await runBench('als.bench.ts', node24.command)),
        bench: 'als-node24',
      }));
  }

  const failures = reports.flatMap((r) => r.failures.map((f) => `${r.bench}: ${f}`));
  const targets = reports.flatMap((r) => r.targets);
  console.log('\nTargets (ratios in one run; reported, never failed on):');
  for (const t of targets)
    console.log(
      `  ${t.met ? 'met   ' : 'MISSED'} ${t.description}: ${String(t.value)}${t.unit} (target ≤ ${String(t.limit)}${t.unit})`,
    );
  if (flags.quick) {
    console.log(`\nquick run: ${((performance.now() - started) / 1000).toFixed(1)} s, nothing written`);
  } else {
    mkdirSync(resultsDir, { recursive: true });
    for (const report of reports)
      writeFileSync(join(resultsDir, `${report.bench}.json`), `${JSON.stringify(report, null, 2)}\n`);
    console.log(
      `\nwrote ${String(reports.length)} reports to bench/results/ in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    const rendered = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'report.ts')], { stdio: 'inherit' });
    if (rendered.status !== 0) failures.push('bench/report.ts failed');
  }
  if (failures.length > 0) {
    console.error(`\nFAILED:\n  ${failures.join('\n  ')}`);
    process.exitCode = 1;
  } else {
    console.log('Every loopsafe scenario was bounded and clean.');
  }
}

await main();
