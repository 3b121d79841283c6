/**
 * The runtime matrix (`npm run test:runtimes`): proves the packed package on
 * every runtime the README claims.
 *
 * 1. Packs the package and installs the tarball into a scratch consumer
 *    project (`node_modules/.cache/loopsafe-runtimes/consumer`), so every run
 *    below resolves `loopsafe` through its `exports`, as a user's would.
 * 2. Runs the portable suite (`test/portable/`) there on Node 20 (this one),
 *    Node 22, 24 and 26, Bun and Deno, and, bundled by esbuild for the browser
 *    (which picks the `browser` build), in headless Chromium.
 * 3. With `--unit`, also runs the whole vitest unit suite on Node 22, 24 and 26.
 *
 * Runtimes whose package cannot be installed (no registry) are reported as
 * SKIPPED with the reason and do not fail the run; `--require-all` makes them
 * fail it. A runtime that fails a test, or does not finish within its time
 * limit, fails the run.
 *
 * Usage: tsx scripts/test-runtimes.ts [--unit] [--require-all] [--only node22,bun,...]
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { findChromium, type ChromiumLaunch } from './lib/chromium.js';
import type { PortableResult } from '../test/portable/suite.js';
import { currentNode, installableRuntimes, installRuntime, type Runtime } from './lib/runtimes.js';

const root = resolve(import.meta.dirname, '..');
const cache = join(root, 'node_modules', '.cache', 'loopsafe-runtimes');
const consumer = join(cache, 'consumer');
/** The portable suite takes ~2 s; a runtime that needs this long has hung. */
const SUITE_LIMIT_MS = 90_000;
/** The unit suite takes ~30 s on this 2-core machine. */
const UNIT_LIMIT_MS = 300_000;

const argv = process.argv.slice(2);
const withUnit = argv.includes('--unit');
const requireAll = argv.includes('--require-all');
const onlyIndex = argv.indexOf('--only');
const only = onlyIndex === -1 ? undefined : new Set((argv[onlyIndex + 1] ?? '').split(','));
const wanted = (name: string): boolean => only === undefined || only.has(name);

interface Row {
  readonly runtime: string;
  readonly check: string;
  readonly outcome: 'passed' | 'FAILED' | 'SKIPPED';
  readonly detail: string;
  readonly seconds: number;
}
const rows: Row[] = [];

interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  readonly seconds: number;
}

/** Runs a command to completion, killing it (and failing) past `limitMs`. */
function runBounded(command: string, args: readonly string[], cwd: string, limitMs: number): Promise<Finished> {
  const started = performance.now();
  return new Promise((done, fail) => {
    const child = spawn(command, args, {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, limitMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      fail(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr, timedOut, seconds: (performance.now() - started) / 1000 });
    });
  });
}

function summarise(results: readonly PortableResult[]): { ok: boolean; detail: string } {
  const failed = results.filter((result) => !result.ok);
  if (results.length === 0) return { ok: false, detail: 'no results' };
  const head = `${String(results.length - failed.length)}/${String(results.length)} tests`;
  if (failed.length === 0) return { ok: true, detail: head };
  return {
    ok: false,
    detail: `${head}; ${failed.map((result) => `${result.name}: ${result.error ?? ''}`).join(' | ')}`,
  };
}

/** Packs the package and installs the tarball into a fresh consumer project. */
async function prepareConsumer(): Promise<void> {
  if (!existsSync(join(root, 'dist', 'browser.js')) || !existsSync(join(root, 'dist', 'index.cjs'))) {
    throw new Error('dist/ is missing or incomplete: run `npm run build` first');
  }
  rmSync(consumer, { recursive: true, force: true });
  mkdirSync(consumer, { recursive: true });
  // The build above is packed as it is: `prepack` would build it again (check:package proves prepack)
  // and print the build's output before npm's JSON.
  const packed = await runBounded(
    'npm',
    ['pack', '--json', '--ignore-scripts', '--pack-destination', consumer],
    root,
    120_000,
  );
  if (packed.code !== 0) throw new Error(`npm pack failed: ${packed.stderr}`);
  const [{ filename }] = JSON.parse(packed.stdout) as [{ filename: string }];
  writeFileSync(
    join(consumer, 'package.json'),
    JSON.stringify({ name: 'loopsafe-runtime-matrix', private: true, type: 'module' }),
  );
  const installed = await runBounded(
    'npm',
    ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--offline', `./${filename}`],
    consumer,
    120_000,
  );
  if (installed.code !== 0) throw new Error(`installing the tarball failed: ${installed.stderr}`);

  // The server suite keeps `loopsafe` external: each runtime resolves it from
  // the consumer's node_modules, through the package's exports.
  await build({
    entryPoints: [join(root, 'test', 'portable', 'main.server.ts')],
    outfile: join(consumer, 'suite.mjs'),
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'es2022',
    external: ['loopsafe', 'loopsafe/testing'],
    logLevel: 'warning',
  });
  // The browser suite is bundled in two steps so that `loopsafe` is resolved
  // from the consumer (the tarball), not from this repository.
  await build({
    entryPoints: [join(root, 'test', 'portable', 'main.browser.ts')],
    outfile: join(consumer, 'browser-entry.mjs'),
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    external: ['loopsafe'],
    logLevel: 'warning',
  });
  const bundled = await build({
    entryPoints: [join(consumer, 'browser-entry.mjs')],
    outfile: join(consumer, 'browser-suite.js'),
    absWorkingDir: consumer,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    metafile: true,
    logLevel: 'warning',
  });
  const fromPackage = Object.keys(bundled.metafile.inputs).filter((input) => input.includes('node_modules/loopsafe/'));
  if (fromPackage.join() !== 'node_modules/loopsafe/dist/browser.js') {
    throw new Error(
      `the browser bundle should take loopsafe's browser build alone, it took: ${fromPackage.join(', ')}`,
    );
  }
}

async function runSuite(runtime: Runtime): Promise<void> {
  const finished = await runBounded(runtime.command, [...runtime.args, 'suite.mjs'], consumer, SUITE_LIMIT_MS);
  const line = finished.stdout.trim().split('\n').pop() ?? '';
  let report: { version: string; results: PortableResult[] } | undefined;
  try {
    report = JSON.parse(line) as { version: string; results: PortableResult[] };
  } catch {
    report = undefined;
  }
  if (finished.timedOut || report === undefined) {
    const why = finished.timedOut
      ? `did not finish within ${String(SUITE_LIMIT_MS / 1000)} s`
      : `exit ${String(finished.code)}, no report`;
    rows.push({
      runtime: runtime.name,
      check: 'portable suite',
      outcome: 'FAILED',
      detail: `${why}: ${finished.stderr.trim().slice(-600)}`,
      seconds: finished.seconds,
    });
    return;
  }
  const { ok, detail } = summarise(report.results);
  const consistent = ok === (finished.code === 0);
  rows.push({
    runtime: `${runtime.name} (${report.version})`,
    check: 'portable suite',
    outcome: ok && consistent ? 'passed' : 'FAILED',
    detail: consistent ? detail : `${detail}; exit code ${String(finished.code)} disagrees`,
    seconds: finished.seconds,
  });
}

async function runBrowser(): Promise<void> {
  const started = performance.now();
  let found: ChromiumLaunch;
  try {
    found = await findChromium();
  } catch (error) {
    rows.push({
      runtime: 'chromium',
      check: 'portable suite (browser build)',
      outcome: 'FAILED',
      detail: error instanceof Error ? error.message : String(error),
      seconds: 0,
    });
    return;
  }
  const browser = await chromium.launch({ executablePath: found.executablePath, args: found.args });
  try {
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto('about:blank');
    const version = browser.version();
    await page.addScriptTag({ content: readFileSync(join(consumer, 'browser-suite.js'), 'utf8'), type: 'module' });
    const handle = await page.waitForFunction(
      () => {
        const page = globalThis as { loopsafeResults?: unknown; loopsafeError?: string };
        return page.loopsafeResults ?? (page.loopsafeError === undefined ? undefined : { error: page.loopsafeError });
      },
      undefined,
      { timeout: SUITE_LIMIT_MS, polling: 50 },
    );
    const value = (await handle.jsonValue()) as PortableResult[] | { error: string };
    const seconds = (performance.now() - started) / 1000;
    if (!Array.isArray(value)) {
      rows.push({
        runtime: `chromium ${version} (${found.source})`,
        check: 'portable suite (browser build)',
        outcome: 'FAILED',
        detail: value.error,
        seconds,
      });
      return;
    }
    const { ok, detail } = summarise(value);
    const clean = pageErrors.length === 0;
    rows.push({
      runtime: `chromium ${version} (${found.source})`,
      check: 'portable suite (browser build)',
      outcome: ok && clean ? 'passed' : 'FAILED',
      detail: clean ? detail : `${detail}; page errors: ${pageErrors.join(' | ')}`,
      seconds,
    });
  } finally {
    await browser.close();
  }
}

async function runUnit(runtime: Runtime): Promise<void> {
  const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
  const finished = await runBounded(runtime.command, [vitest, 'run', '--reporter=dot'], root, UNIT_LIMIT_MS);
  const summary = /Tests\s+(.*)/.exec(finished.stdout)?.[1]?.trim() ?? 'no summary';
  const ok = finished.code === 0 && !finished.timedOut;
  rows.push({
    runtime: runtime.name,
    check: 'unit suite (vitest)',
    outcome: ok ? 'passed' : 'FAILED',
    detail: ok
      ? summary
      : `${finished.timedOut ? 'timed out; ' : ''}${summary}\n${finished.stdout.slice(-3000)}${finished.stderr.slice(-1500)}`,
    seconds: finished.seconds,
  });
}

async function main(): Promise<void> {
  const started = performance.now();
  await prepareConsumer();
  console.log(`packed and installed into ${relative(root, consumer)}`);

  const runtimes: Runtime[] = [];
  const node = currentNode();
  if (wanted(node.name)) runtimes.push(node);
  for (const name of installableRuntimes) {
    // The running Node is in the list already: an installed copy of the same line would run it twice.
    if (!wanted(name) || name === node.name) continue;
    const installed = installRuntime(name);
    if ('unavailable' in installed) {
      rows.push({ runtime: name, check: 'install', outcome: 'SKIPPED', detail: installed.unavailable, seconds: 0 });
    } else {
      runtimes.push(installed);
    }
  }
  for (const runtime of runtimes) await runSuite(runtime);
  if (wanted('chromium')) await runBrowser();
  if (withUnit) {
    for (const runtime of runtimes) {
      if (runtime.name.startsWith('node') && runtime !== node) await runUnit(runtime);
    }
  }

  const width = Math.max(...rows.map((row) => row.runtime.length));
  for (const row of rows) {
    console.log(
      `${row.outcome.padEnd(7)} ${row.runtime.padEnd(width)}  ${row.check.padEnd(30)} ${row.seconds.toFixed(1).padStart(5)} s  ${row.detail}`,
    );
  }
  const failed = rows.filter((row) => row.outcome === 'FAILED' || (requireAll && row.outcome === 'SKIPPED'));
  const skipped = rows.filter((row) => row.outcome === 'SKIPPED');
  console.log(
    `runtime matrix: ${String(rows.length - failed.length - (requireAll ? 0 : skipped.length))} passed, ${String(failed.length)} failed, ${String(skipped.length)} skipped in ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
  if (failed.length > 0) process.exitCode = 1;
}

await main();
