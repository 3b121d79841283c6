#!/usr/bin/env node
// Checks the package as it will be published: packs it once, from a clean copy of the
// working tree (the files git tracks or would track: no dist/, so the `prepack` build is what
// fills it, as on a fresh clone), then runs
// publint --strict and Are-The-Types-Wrong on the tarball, checks the file list,
// smoke-tests the packed ESM and CJS builds from a scratch install, and
// type-checks TypeScript consumers of the tarball (node16 ESM, node16 CJS, bundler) with the repo's
// TypeScript 5.9 and with TypeScript 7 (the native compiler, installed on first use into
// node_modules/.cache/loopsafe-typescript7: its `tsc` bin would shadow 5.9's in node_modules/.bin).
import { execFile, execFileSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { installCached } from './lib/runtimes.ts';

const root = resolve(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'loopsafe-pack-'));
const bin = (name) => join(root, 'node_modules', '.bin', name);
const run = (command, args, options = {}) =>
  execFileSync(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', ...options });

/** The TypeScript 7 consumers are checked with: pinned, so a new release cannot change the verdict unseen. */
const TYPESCRIPT_7 = '7.0.2';

/** Installs TypeScript 7 into the cache (once) and returns its `tsc`. */
function typescript7() {
  const installed = installCached(
    `typescript-${TYPESCRIPT_7}`,
    `typescript@${TYPESCRIPT_7}`,
    'node_modules/typescript/bin/tsc',
  );
  if ('unavailable' in installed) throw new Error(`TypeScript ${TYPESCRIPT_7}: ${installed.unavailable}`);
  return installed.path;
}

/**
 * Copies what a fresh clone would hold — tracked files and new files git does
 * not ignore, as they are in the working tree — into `dir`, with the repo's
 * node_modules linked in (prepack's build needs its tools, not its output).
 */
function cleanTree(dir) {
  const listed = run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard']).split('\0');
  let copied = 0;
  for (const file of listed) {
    if (file === '' || !existsSync(join(root, file))) continue; // deleted in the working tree
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    copyFileSync(join(root, file), join(dir, file));
    copied++;
  }
  if (existsSync(join(dir, 'dist'))) throw new Error('dist/ is tracked by git: a clean clone must not hold a build');
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return copied;
}

try {
  const clean = join(work, 'clean');
  const copied = cleanTree(clean);
  // npm pack runs `prepack` (the build) in the clean tree: a tarball without dist/ fails below.
  const output = run('npm', ['pack', '--json', '--pack-destination', work], {
    cwd: clean,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // The build's own output comes first on stdout; npm's JSON report is the array that ends it.
  const report = output.slice(output.search(/^\[\s*\{/m));
  const [packed] = JSON.parse(report);
  console.log(`packed from a clean copy of the tree (${String(copied)} files, no dist/): prepack built it`);
  const tarball = join(work, packed.filename);
  const files = packed.files.map((file) => file.path);
  console.log(`packed ${packed.filename}: ${String(files.length)} files, ${String(packed.size)} bytes`);

  const forbidden = files.filter(
    (file) => /(^|\/)(test|bench|src|scripts|server|docs)\//.test(file) || /\.test\./.test(file),
  );
  if (forbidden.length > 0) throw new Error(`files that must not ship: ${forbidden.join(', ')}`);
  for (const required of [
    'dist/index.js',
    'dist/index.cjs',
    'dist/index.d.ts',
    'dist/index.d.cts',
    'dist/testing.js',
    'dist/testing.cjs',
    ...['http', 'fastify', 'express', 'hono'].flatMap((name) => [
      `dist/${name}.js`,
      `dist/${name}.cjs`,
      `dist/${name}.d.ts`,
      `dist/${name}.d.cts`,
    ]),
    'dist/otel.js',
    'dist/otel.cjs',
    'dist/otel.d.ts',
    'dist/otel.d.cts',
    'dist/browser.js',
    'LICENSE',
    'README.md',
  ]) {
    if (!files.includes(required))
      throw new Error(`missing from the tarball packed from a clean tree: ${required} (does prepack build?)`);
  }
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  if (Object.keys(manifest.dependencies ?? {}).length > 0)
    throw new Error('the core must have zero runtime dependencies');
  // OpenTelemetry is an optional peer of loopsafe/otel alone: the core never loads it, and
  // loopsafe/otel reads loopsafe through its channels only (it bundles no engine of its own).
  for (const core of ['dist/index.cjs', 'dist/testing.cjs', 'dist/browser.js']) {
    if (readFileSync(join(root, core), 'utf8').includes('@opentelemetry'))
      throw new Error(`${core} refers to @opentelemetry: only loopsafe/otel may`);
  }
  const otelBuild = readFileSync(join(root, 'dist/otel.cjs'), 'utf8');
  if (/require\(["'](node:)?async_hooks["']\)/.test(otelBuild))
    throw new Error('dist/otel.cjs bundles an engine of its own');
  if (manifest.peerDependenciesMeta?.['@opentelemetry/api']?.optional !== true)
    throw new Error('@opentelemetry/api must be an optional peer dependency');

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
  writeFileSync(
    join(app, 'esm.mjs'),
    `import * as lib from 'loopsafe'; import * as testing from 'loopsafe/testing'; const kind = 'ESM'; ${smoke}`,
  );
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
  // The subpath entries share that engine too: a scope opened through 'loopsafe' is the one
  // 'loopsafe/http' sees, from ESM and from CJS, and an HTTP error is one class whichever loaded it.
  writeFileSync(
    join(app, 'subpaths.mjs'),
    `import { createRequire } from 'node:module';
     import { withTimeout } from 'loopsafe';
     import { deadlineHeaders, DeadlineHeaderError } from 'loopsafe/http';
     import loopsafeFastify from 'loopsafe/fastify';
     import { deadline as expressDeadline } from 'loopsafe/express';
     import { deadline as honoDeadline } from 'loopsafe/hono';
     const require = createRequire(import.meta.url);
     const cjsHttp = require('loopsafe/http');
     const seen = await withTimeout(5000, () => [deadlineHeaders(), cjsHttp.deadlineHeaders()]);
     for (const headers of seen) {
       if (!(Number(headers['x-request-timeout']) > 4000)) throw new Error('loopsafe/http did not see the scope: ' + JSON.stringify(seen));
     }
     if (cjsHttp.DeadlineHeaderError !== DeadlineHeaderError) throw new Error('ESM and CJS loopsafe/http differ');
     if (typeof loopsafeFastify !== 'function' || require('loopsafe/fastify').default !== loopsafeFastify)
       throw new Error('loopsafe/fastify has no default export that is the plugin');
     for (const make of [expressDeadline, honoDeadline, require('loopsafe/express').deadline, require('loopsafe/hono').deadline]) {
       if (typeof make() !== 'function') throw new Error('an adapter did not make a middleware');
     }
     console.log('loopsafe/http and the adapters share the engine, from ESM and CJS');`,
  );
  // Every exported class prints with its own name in each build (a bundler renames a class whose
  // body names itself: `_TimeoutError`), and no internal field shows when an error is inspected.
  writeFileSync(
    join(app, 'names.mjs'),
    `import { createRequire } from 'node:module';
     import { inspect } from 'node:util';
     const builds = {
       esm: await import('loopsafe'),
       cjs: createRequire(import.meta.url)('loopsafe'),
       browser: await import('./node_modules/loopsafe/dist/browser.js'),
       'testing (esm)': await import('loopsafe/testing'),
     };
     const samples = {
       TimeoutError: (C) => new C('late', { scopeName: 's', timeoutMs: 1 }),
       GatherError: (C) => new C([new Error('x')]),
       QueueFullError: (C) => new C('db', 1),
     };
     let classes = 0;
     for (const [build, exports] of Object.entries(builds)) {
       for (const [name, value] of Object.entries(exports)) {
         if (typeof value !== 'function' || !/^[A-Z]/.test(name)) continue;
         classes++;
         if (value.name !== name) throw new Error(build + ': ' + name + ' is named ' + value.name);
         const make = samples[name];
         if (make === undefined) continue;
         const printed = inspect(make(value));
         if (!printed.startsWith(name + ': ')) throw new Error(build + ': an inspected ' + name + ' prints as ' + printed.split('\\n')[0]);
         if (/Symbol\\(|\\b_[a-zA-Z]/.test(printed)) throw new Error(build + ': an inspected ' + name + ' shows an internal field: ' + printed);
       }
     }
     console.log('exported classes print with their own names (' + classes + ' across ' + Object.keys(builds).length + ' builds)');`,
  );
  process.stdout.write(run(process.execPath, ['names.mjs'], { cwd: app }));
  checkPublishedTypes(join(app, 'node_modules', 'loopsafe', 'dist'));
  process.stdout.write(run(process.execPath, ['dual.mjs'], { cwd: app }));
  process.stdout.write(run(process.execPath, ['subpaths.mjs'], { cwd: app }));
  process.stdout.write(run(process.execPath, ['esm.mjs'], { cwd: app }));
  process.stdout.write(run(process.execPath, ['cjs.cjs'], { cwd: app }));

  await checkTypeScriptConsumers(app);
  console.log('package checks passed');
} finally {
  rmSync(work, { recursive: true, force: true });
}

/**
 * The published declarations name no internal: no engine class, no
 * underscore member (`Semaphore._release`), nothing from src/internal/.
 */
function checkPublishedTypes(dist) {
  const internal =
    /\b(CancelNode|ScopeNode|LeafWait|SignalHub|Waiter|SemaphorePermit|Contest|HedgeDelay|FlightWait|lostReason|QueuedDeadline|ClockDeadline|createDeferred|rejectAtCaller|countThrottled|assertRetryOptions|timerLagSource|DEFAULT_BACKOFF_MAX_MS)\b/;
  const underscoreMember = /^\s*(?:readonly\s+|static\s+|protected\s+)*_[A-Za-z]\w*\??\s*[(:<]/m;
  const declarations = readdirSync(dist).filter((file) => /\.d\.c?ts$/.test(file));
  if (declarations.length === 0) throw new Error('no declarations in the tarball');
  for (const file of declarations) {
    const text = readFileSync(join(dist, file), 'utf8');
    const name = internal.exec(text);
    if (name !== null) throw new Error(`${file} names an internal: ${name[0]}`);
    const member = underscoreMember.exec(text);
    if (member !== null) throw new Error(`${file} declares an internal member: ${member[0].trim()}`);
  }
  console.log(`published types name no internal (${String(declarations.length)} declaration files)`);
}

/**
 * TypeScript consumers of the installed tarball, each in its own package under
 * `app` (so its package.json `type` decides the module format), type-checked by
 * the repo's tsc. The node16 consumers run with `skipLibCheck: false`, so the
 * shipped .d.ts and .d.cts are checked too. The program pins exact types (a declaration that widened to
 * `any` or changed shape fails `exact`), and `@ts-expect-error` lines fail as
 * unused if an entry point's declarations stop rejecting a wrong argument.
 * The node16 ESM consumer is also emitted and run: its types match the runtime.
 */
async function checkTypeScriptConsumers(app) {
  const imports = {
    esm: `import { safeGather, safeSleep, TimeoutError, withTimeout, type Scope } from 'loopsafe';
import { activeTimerCount, assertNoLeaks, createManualClock, type ManualClock } from 'loopsafe/testing';`,
    // import = require for the root, a plain import (compiled to require) for the subpath.
    cjs: `import loopsafe = require('loopsafe');
import { activeTimerCount, assertNoLeaks, createManualClock, type ManualClock } from 'loopsafe/testing';
import safeGather = loopsafe.safeGather;
import safeSleep = loopsafe.safeSleep;
import TimeoutError = loopsafe.TimeoutError;
import withTimeout = loopsafe.withTimeout;
type Scope = loopsafe.Scope;`,
  };
  const program = `
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const exact = <A, B>(proof: Equals<A, B>): Equals<A, B> => proof;

async function main(): Promise<string> {
  const timersBefore: number = activeTimerCount();
  const clock: ManualClock = createManualClock({ start: 1_000 });

  const sleeping: Promise<void> = safeSleep(50, { clock });
  const advanced: Promise<void> = clock.advance(50);
  await Promise.all([sleeping, advanced]);
  exact<ReturnType<typeof safeSleep>, Promise<void>>(true);
  exact<ReturnType<ManualClock['advance']>, Promise<void>>(true);

  const answer = withTimeout(100, (scope: Scope): number => (scope.remaining() > 0 ? 42 : 0), { clock });
  exact<typeof answer, Promise<number>>(true);

  const late = withTimeout(25, () => safeSleep(1_000), { clock, name: 'consumer' }).then(
    (): undefined => undefined,
    (error: unknown) => error,
  );
  await clock.advance(25);
  const error = await late;
  if (!(error instanceof TimeoutError)) throw new Error('expected a TimeoutError');
  const scopeName: string = error.scopeName;
  const timeoutMs: number = error.timeoutMs;
  exact<typeof error.name, 'TimeoutError'>(true);

  const gathered = await safeGather([() => 1, async (signal: AbortSignal) => (signal.aborted ? 'aborted' : 'ok')] as const);
  exact<typeof gathered, [number, 'aborted' | 'ok']>(true);

  assertNoLeaks({ clock, timersBefore });
  return \`\${String(await answer)} \${scopeName}/\${String(timeoutMs)} \${gathered.join(',')}\`;
}

// Never called: each line must be a type error, or the entry point's declarations are too loose.
export function wrongArguments(clock: ManualClock): Array<Promise<void>> {
  return [
    // @ts-expect-error safeSleep takes milliseconds as a number
    safeSleep('50'),
    // @ts-expect-error advance takes milliseconds as a number
    clock.advance('50'),
  ];
}
`;
  const consumers = [
    {
      name: 'node16 ESM',
      dir: 'ts-esm',
      type: 'module',
      module: 'node16',
      moduleResolution: 'node16',
      imports: imports.esm,
      run: true,
    },
    {
      name: 'node16 CJS',
      dir: 'ts-cjs',
      type: 'commonjs',
      module: 'node16',
      moduleResolution: 'node16',
      imports: imports.cjs,
    },
    // Resolves the same .d.ts files as node16 ESM, which checks them already.
    {
      name: 'bundler',
      dir: 'ts-bundler',
      type: 'module',
      module: 'esnext',
      moduleResolution: 'bundler',
      imports: imports.esm,
      skipLibCheck: true,
    },
  ];
  const compilers = [
    { name: 'TypeScript 5.9', tsc: bin('tsc'), emits: true },
    { name: `TypeScript ${TYPESCRIPT_7}`, tsc: typescript7(), emits: false },
  ];
  for (const compiler of compilers) {
    const version = run(compiler.tsc, ['-v']).trim();
    const expected = compiler.name.split(' ')[1];
    if (!version.includes(` ${expected}`)) throw new Error(`${compiler.name} reports ${version}`);
  }
  const execFileAsync = promisify(execFile);
  const started = performance.now();
  const jobs = compilers.flatMap((compiler) =>
    consumers.map((consumer) => ({
      compiler,
      consumer: { ...consumer, run: consumer.run === true && compiler.emits },
    })),
  );
  await Promise.all(
    jobs.map(async ({ compiler, consumer }) => {
      const dir = join(app, `${consumer.dir}-${compiler.emits ? 'ts5' : 'ts7'}`);
      mkdirSync(dir);
      writeFileSync(
        join(dir, 'package.json'),
        JSON.stringify({ name: consumer.dir, private: true, type: consumer.type }),
      );
      const start =
        consumer.type === 'module'
          ? 'console.log(await main());'
          : 'main().then(console.log, (error: unknown) => { console.error(error); process.exitCode = 1; });';
      writeFileSync(join(dir, 'main.ts'), `${consumer.imports}\n${program}\n${start}\n`);
      const compilerOptions = {
        module: consumer.module,
        moduleResolution: consumer.moduleResolution,
        target: 'es2022',
        lib: ['es2022'],
        types: ['node'],
        typeRoots: [join(root, 'node_modules', '@types')],
        strict: true,
        exactOptionalPropertyTypes: true,
        skipLibCheck: consumer.skipLibCheck === true,
        // Type-check only, except for the consumer that is also run (emitting checks just as much).
        ...(consumer.run ? { outDir: 'out' } : { noEmit: true }),
      };
      writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['main.ts'] }));
      try {
        await execFileAsync(compiler.tsc, ['-p', dir], { cwd: dir, encoding: 'utf8' });
      } catch (error) {
        throw new Error(
          `TypeScript consumer (${consumer.name}, ${compiler.name}) failed to compile:\n${error.stdout || error.message}`,
        );
      }
      if (consumer.run) {
        const { stdout } = await execFileAsync(process.execPath, [join(dir, 'out', 'main.js')], {
          cwd: dir,
          encoding: 'utf8',
        });
        if (stdout.trim() !== '42 consumer/25 1,ok')
          throw new Error(`TypeScript consumer (${consumer.name}) printed ${stdout}`);
      }
    }),
  );
  console.log(
    `TypeScript consumers type-check (${consumers.map((c) => c.name).join(', ')}) with ${compilers.map((c) => c.name).join(' and ')}, node16 ESM runs: ${String(Math.round(performance.now() - started))} ms`,
  );
}
