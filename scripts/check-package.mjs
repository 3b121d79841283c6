#!/usr/bin/env node
// Checks the package as it will be published: packs it once, then runs
// publint --strict and Are-The-Types-Wrong on the tarball, checks the file list,
// and smoke-tests the packed ESM and CJS builds from a scratch install.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'loopsafe-pack-'));
const bin = (name) => join(root, 'node_modules', '.bin', name);
const run = (command, args, options = {}) =>
  execFileSync(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', ...options });

try {
  const [packed] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work]));
  const tarball = join(work, packed.filename);
  const files = packed.files.map((file) => file.path);
  console.log(`packed ${packed.filename}: ${String(files.length)} files, ${String(packed.size)} bytes`);

  const forbidden = files.filter((file) => /(^|\/)(test|bench|src|scripts|server|docs)\//.test(file) || /\.test\./.test(file));
  if (forbidden.length > 0) throw new Error(`files that must not ship: ${forbidden.join(', ')}`);
  for (const required of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', 'dist/testing.js', 'dist/testing.cjs', 'LICENSE', 'README.md']) {
    if (!files.includes(required)) throw new Error(`missing from the tarball: ${required}`);
  }
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  if (Object.keys(manifest.dependencies ?? {}).length > 0) throw new Error('the core must have zero runtime dependencies');

  console.log(run(bin('publint'), ['run', tarball, '--strict']));
  console.log(run(bin('attw'), [tarball, '--profile', 'node16', '--format', 'table-flipped']));

  // Smoke test: install the tarball into a scratch project, import and require it.
  const app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'smoke', private: true, type: 'module' }));
  run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--offline', tarball], { cwd: app });
  const smoke = `
    const started = performance.now();
    const outcome = await lib.withTimeout(20, () => new Promise(() => {}), { name: 'smoke' }).catch((e) => e);
    if (!lib.isTimeoutError(outcome) || outcome.scopeName !== 'smoke') throw new Error('no TimeoutError from the packed build');
    const clock = testing.createManualClock();
    const sleeping = lib.safeSleep(50, { clock });
    await clock.advance(50);
    await sleeping;
    console.log(kind + ' ok in ' + Math.round(performance.now() - started) + ' ms');
  `;
  writeFileSync(join(app, 'esm.mjs'), `import * as lib from 'loopsafe'; import * as testing from 'loopsafe/testing'; const kind = 'ESM'; ${smoke}`);
  writeFileSync(
    join(app, 'cjs.cjs'),
    `const lib = require('loopsafe'); const testing = require('loopsafe/testing'); const kind = 'CJS'; (async () => { ${smoke} })().catch((e) => { console.error(e); process.exit(1); });`,
  );
  // import and require must share one engine: a scope opened through one is ambient for the other.
  writeFileSync(
    join(app, 'dual.mjs'),
    `import { createRequire } from 'node:module';
     import { withTimeout, TimeoutError } from 'loopsafe';
     const cjs = createRequire(import.meta.url)('loopsafe');
     const seen = await withTimeout(1000, () => cjs.currentScope()?.name, { name: 'shared' });
     if (seen !== 'shared' || cjs.TimeoutError !== TimeoutError) throw new Error('ESM and CJS loaded two engines');
     console.log('ESM and CJS share one engine');`,
  );
  process.stdout.write(run(process.execPath, ['dual.mjs'], { cwd: app }));
  process.stdout.write(run(process.execPath, ['esm.mjs'], { cwd: app }));
  process.stdout.write(run(process.execPath, ['cjs.cjs'], { cwd: app }));
  console.log('package checks passed');
} finally {
  rmSync(work, { recursive: true, force: true });
}
