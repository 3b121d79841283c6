/**
 * Every popular fake-timer tool drives loopsafe, each the real tool: vitest's
 * `vi.useFakeTimers()` and `@sinonjs/fake-timers` here, `node:test`'s
 * `mock.timers` in a real node:test run, and jest's fake timers in a real jest
 * run. The scenarios are shared (test/fake-timers/scenarios.ts).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import FakeTimers from '@sinonjs/fake-timers';
import { build } from 'esbuild';
import { afterAll, describe, expect, it, vi } from 'vitest';
import * as loopsafe from '../src/index.js';
import { scenarios } from './fake-timers/scenarios.js';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const check = (condition: boolean, message: string): void => {
  expect(condition, message).toBe(true);
};

/** An in-process tool: `install()` fakes the timers and returns how to advance them and how to undo it. */
function describeTool(title: string, install: () => { advance: (ms: number) => Promise<unknown>; uninstall(): void }) {
  describe(title, () => {
    it.each(Object.keys(scenarios))('%s', async (name) => {
      const tool = install();
      try {
        await (scenarios[name] as (typeof scenarios)[string])(
          loopsafe,
          (ms) => tool.advance(ms).then(() => undefined),
          check,
        );
      } finally {
        tool.uninstall();
      }
    });

    it('real timers work again once the tool is uninstalled', async () => {
      const started = performance.now();
      await loopsafe.safeSleep(5);
      expect(performance.now() - started).toBeGreaterThanOrEqual(4);
    });
  });
}

describeTool("vitest's fake timers", () => {
  vi.useFakeTimers();
  return { advance: (ms) => vi.advanceTimersByTimeAsync(ms), uninstall: () => vi.useRealTimers() };
});

describeTool('@sinonjs/fake-timers', () => {
  const clock = FakeTimers.install();
  return {
    advance: (ms) => clock.tickAsync(ms),
    uninstall: () => {
      clock.uninstall();
    },
  };
});

/** Runs a command; resolves with its exit code and output (bounded). */
function run(command: string, args: readonly string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const killer = setTimeout(() => child.kill(), 60_000);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(killer);
      done({ code, output });
    });
  });
}

const scenarioCount = Object.keys(scenarios).length + 1;

describe("node:test's mock.timers", () => {
  it('drives every scenario in a real node:test run', async () => {
    const file = join('test', 'fake-timers', 'node-test.mts');
    const { code, output } = await run(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', file]);
    expect(output).toContain(`# pass ${String(scenarioCount)}`);
    expect(code, output).toBe(0);
  }, 70_000);
});

describe("jest's fake timers", () => {
  const dir = mkdtempSync(join(tmpdir(), 'loopsafe-jest-'));
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('drives every scenario in a real jest run', async () => {
    await build({
      entryPoints: [join(root, 'test', 'fake-timers', 'jest', 'loopsafe.jest.ts')],
      outfile: join(dir, 'loopsafe.test.cjs'),
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      logLevel: 'warning',
    });
    writeFileSync(
      join(dir, 'jest.config.cjs'),
      `module.exports = ${JSON.stringify({ rootDir: dir, testEnvironment: 'node', testMatch: ['**/*.test.cjs'], cacheDirectory: join(dir, 'cache') })};\n`,
    );
    const jest = join(root, 'node_modules', 'jest', 'bin', 'jest.js');
    const { code, output } = await run(process.execPath, [jest, '--config', join(dir, 'jest.config.cjs'), '--ci']);
    expect(output).toMatch(new RegExp(`Tests:\\s+${String(scenarioCount)} passed`));
    expect(code, output).toBe(0);
  }, 70_000);
});
