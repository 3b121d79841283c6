import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defineConfig } from 'tsup';

const entry = { index: 'src/index.ts', testing: 'src/testing.ts' };

/**
 * One instance per process. The ambient scope lives in an AsyncLocalStorage
 * owned by the module: if `import` and `require` loaded two copies, a scope
 * opened through one would be invisible to the other. So the ESM entry points
 * are thin wrappers that re-export the CommonJS build (Node's documented
 * answer to the dual-package hazard), and both share one engine.
 */
async function wrapEsmAroundCjs(): Promise<void> {
  for (const name of Object.keys(entry)) {
    const cjs: unknown = await import(join(process.cwd(), 'dist', `${name}.cjs`));
    const names = Object.keys(cjs as object).filter((key) => key !== 'default' && key !== '__esModule');
    const body = [
      `// ESM entry: re-exports the CommonJS build so that import and require share one engine.`,
      `import cjs from './${name}.cjs';`,
      `export const { ${names.join(', ')} } = cjs;`,
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

export default defineConfig({
  entry,
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  splitting: false,
  treeshake: true,
  onSuccess: wrapEsmAroundCjs,
});
