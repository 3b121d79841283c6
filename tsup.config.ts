import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { defineConfig } from 'tsup';

const entry = {
  index: 'src/index.ts',
  testing: 'src/testing.ts',
  http: 'src/http.ts',
  fastify: 'src/fastify.ts',
  express: 'src/express.ts',
  hono: 'src/hono.ts',
  otel: 'src/otel.ts',
};

/**
 * One instance per process. The ambient scope lives in an AsyncLocalStorage
 * owned by the module: if `import` and `require` loaded two copies, a scope
 * opened through one would be invisible to the other. So the ESM entry points
 * are thin wrappers that re-export the CommonJS build (Node's documented
 * answer to the dual-package hazard), and both share one engine.
 */
async function wrapEsmAroundCjs(): Promise<void> {
  // The CommonJS module's own exports object, through require: an ESM namespace of it has more names
  // on newer Node (`module.exports` since Node 23), which are no export a wrapper can name.
  const requireBuilt = createRequire(join(process.cwd(), 'package.json'));
  for (const name of Object.keys(entry)) {
    const cjs = requireBuilt(join(process.cwd(), 'dist', `${name}.cjs`)) as object;
    const names = Object.keys(cjs).filter((key) => key !== 'default' && key !== '__esModule');
    const odd = names.filter((key) => !/^[A-Za-z_$][\w$]*$/.test(key));
    if (odd.length > 0)
      throw new Error(`dist/${name}.cjs exports names an ESM wrapper cannot re-export: ${odd.join(', ')}`);
    const body = [
      `// ESM entry: re-exports the CommonJS build so that import and require share one engine.`,
      `import cjs from './${name}.cjs';`,
      ...(names.length > 0 ? [`export const { ${names.join(', ')} } = cjs;`] : []),
      // A default-only entry (the Fastify plugin) is `module.exports` itself, as Fastify plugins are.
      ...(typeof cjs === 'function' ? ['export default cjs;'] : []),
      ...(Object.hasOwn(cjs, 'default') ? ['export default cjs.default;'] : []),
      '',
    ].join('\n');
    await writeFile(join('dist', `${name}.js`), body);
    await rm(join('dist', `${name}.js.map`), { force: true });
  }
  // The ESM bundles' own shared chunks are no longer referenced.
  for (const file of await readdir('dist')) {
    if (/^chunk-.*\.js(\.map)?$/.test(file)) await rm(join('dist', file));
  }
  const check = await readFile(join('dist', 'index.js'), 'utf8');
  if (!check.includes('withTimeout')) throw new Error('ESM wrapper is missing exports');
}

/**
 * One engine per process, shared by every entry point: the subpath entries
 * (`loopsafe/http` and the framework adapters) reach the core through the
 * public barrel only (`import … from '../index.js'`), which is left as an
 * import of the package's own built `index` — never bundled again — so a
 * scope opened by `withTimeout` is the ambient scope `scopedFetch` sees, and
 * a `TimeoutError` is one class. Stateless helpers (argument checks) may be
 * bundled into each entry.
 */
const coreFromIndex: Plugin = {
  name: 'loopsafe-core-from-index',
  setup(builder) {
    // tsup builds its CommonJS output as ESM and converts it: the output extension tells them apart.
    const extension = builder.initialOptions.outExtension?.['.js'] ?? '.js';
    const index = resolve('src/index.ts');
    builder.onResolve({ filter: /(^|\/)index\.js$/ }, (args) => {
      if (resolve(args.resolveDir, args.path.replace(/\.js$/, '.ts')) !== index) return undefined;
      return { path: `./index${extension}`, external: true };
    });
  },
};

/** Resolves the engine's `./platform.js` (and `./trace.js`, the tracing hook) to the browser implementation. */
const browserPlatform: Plugin = {
  name: 'loopsafe-browser-platform',
  setup(builder) {
    builder.onResolve({ filter: /\/(platform|trace)\.js$/ }, (args) => ({
      path: resolve(args.resolveDir, args.path.replace(/\.js$/, '.browser.ts')),
    }));
  },
};

/**
 * The browser build (the `browser` export condition): a real ES module, so
 * bundlers tree-shake it, with `platform.browser.ts` in place of the `node:`
 * modules. It has no dual-package hazard to avoid (there is no
 * `AsyncLocalStorage` to share), and it exports the same API, so it shares
 * `index.d.ts`.
 */
async function buildBrowser(): Promise<void> {
  await build({
    entryPoints: { browser: 'src/index.ts' },
    outdir: 'dist',
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: true,
    plugins: [browserPlatform],
    logLevel: 'warning',
  });
  const code = await readFile(join('dist', 'browser.js'), 'utf8');
  const nodeImport = /(?:from|import\()\s*["']node:[^"']+["']/.exec(code);
  if (nodeImport !== null) throw new Error(`the browser build imports a Node module: ${nodeImport[0]}`);
}

export default defineConfig({
  entry,
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  splitting: false,
  esbuildPlugins: [coreFromIndex],
  external: ['fastify', 'hono', 'express'],
  treeshake: true,
  onSuccess: async () => {
    await wrapEsmAroundCjs();
    await buildBrowser();
  },
});
