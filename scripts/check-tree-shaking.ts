/**
 * Proves the browser build tree-shakes: bundles single imports from
 * `dist/browser.js` with esbuild, as an application would, and checks which of
 * the library's source modules each bundle kept. `safeSleep` alone must not
 * pull in retry, backoff, gather, semaphores or the event-loop tools.
 *
 * How: the unminified browser build marks each source module with a
 * `// src/<module>.ts` comment, so every top-level declaration maps to its
 * module; the probe bundle's top-level declarations then say which modules it
 * contains. Run by `npm run size`, after size-limit.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';

const root = resolve(import.meta.dirname, '..');
const browserBuild = join(root, 'dist', 'browser.js');

const DECLARATION = /^(?:export )?(?:async )?(?:function\*? |class |var |let |const )([\w$]+)/;

/** Top-level declaration name → the source module it came from. */
function declarationModules(code: string): Map<string, string> {
  const owners = new Map<string, string>();
  let module = '';
  for (const line of code.split('\n')) {
    const marker = /^\/\/ (src\/[\w/.-]+\.ts)$/.exec(line);
    if (marker?.[1] !== undefined) module = marker[1];
    const name = DECLARATION.exec(line)?.[1];
    if (name !== undefined && module !== '') owners.set(name, module);
  }
  return owners;
}

interface Probe {
  readonly imports: string;
  /** Modules the bundle must not contain. */
  readonly forbidden: readonly string[];
}

const everythingButTheCore = [
  'src/retry.ts',
  'src/backoff.ts',
  'src/retry-after.ts',
  'src/retry-budget.ts',
  'src/gather.ts',
  'src/semaphore.ts',
  'src/mutex.ts',
  'src/with-safe-async.ts',
  'src/event-loop.ts',
  'src/cooperative.ts',
  'src/load-shedding.ts',
  'src/stalls.ts',
];
const probes: readonly Probe[] = [
  {
    imports: 'safeSleep',
    forbidden: [
      ...everythingButTheCore,
      'src/wait-for.ts',
      'src/scope.ts',
      'src/channels.ts',
      'src/internal/publish.ts',
    ],
  },
  { imports: 'safeWaitFor', forbidden: everythingButTheCore },
  {
    imports: 'retry',
    forbidden: [
      'src/gather.ts',
      'src/semaphore.ts',
      'src/event-loop.ts',
      'src/load-shedding.ts',
      'src/stalls.ts',
      'src/cooperative.ts',
      'src/with-safe-async.ts',
    ],
  },
];

const owners = declarationModules(readFileSync(browserBuild, 'utf8'));
if (owners.size < 50)
  throw new Error(`found only ${String(owners.size)} declarations in ${browserBuild}: is it minified?`);

let failed = false;
for (const probe of probes) {
  const result = await build({
    stdin: {
      contents: `export { ${probe.imports} } from ${JSON.stringify(browserBuild)};`,
      resolveDir: root,
      loader: 'js',
    },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    logLevel: 'warning',
  });
  const code = result.outputFiles[0]?.text ?? '';
  const kept = new Set<string>();
  for (const line of code.split('\n')) {
    const name = DECLARATION.exec(line)?.[1];
    const module = name === undefined ? undefined : owners.get(name);
    if (module !== undefined) kept.add(module);
  }
  const wrong = probe.forbidden.filter((module) => kept.has(module));
  const modules = [...kept].map((module) => module.replace(/^src\//, '').replace(/\.ts$/, '')).sort();
  console.log(
    `${wrong.length === 0 ? 'ok  ' : 'FAIL'} { ${probe.imports} } keeps ${String(kept.size)} modules: ${modules.join(', ')}`,
  );
  if (
    !kept.has(
      `src/${probe.imports === 'safeSleep' ? 'sleep' : probe.imports === 'safeWaitFor' ? 'wait-for' : 'retry'}.ts`,
    )
  ) {
    console.log(
      `FAIL { ${probe.imports} }: the probe did not find its own module; the check is not measuring anything`,
    );
    failed = true;
  }
  if (wrong.length > 0) {
    console.log(`FAIL { ${probe.imports} } must not contain: ${wrong.join(', ')}`);
    failed = true;
  }
}
if (failed) process.exitCode = 1;
