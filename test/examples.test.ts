/**
 * Every `@example` in the TSDoc of src/ and every ```ts block in README.md and
 * docs/*.md is real code: this test extracts each one, points its `loopsafe`
 * imports at the sources, and runs it. An example that throws, or does not
 * finish, fails here.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it, vi } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const outDir = join(root, '.tmp', 'examples');

interface Example {
  readonly source: string;
  readonly index: number;
  readonly code: string;
}

function listFiles(dir: string, accept: (file: string) => boolean): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && accept(entry.name))
    .map((entry) => join(entry.parentPath, entry.name));
}

function examplesInTsDoc(file: string): string[] {
  const found: string[] = [];
  for (const comment of readFileSync(file, 'utf8').matchAll(/\/\*\*([\s\S]*?)\*\//g)) {
    const text = (comment[1] ?? '').replace(/^[ \t]*\* ?/gm, '');
    for (const block of text.matchAll(/@example\s*\n```ts\n([\s\S]*?)```/g)) found.push(block[1] ?? '');
  }
  return found;
}

function examplesInMarkdown(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/```ts\n([\s\S]*?)```/g)]
    .map((match) => match[1] ?? '')
    .filter((code) => /from 'loopsafe(\/testing)?'/.test(code) && !code.includes('// not runnable'));
}

function collect(): Example[] {
  const sources = [
    ...listFiles(join(root, 'src'), (name) => name.endsWith('.ts')).map((file) => ({ file, codes: examplesInTsDoc(file) })),
    ...[join(root, 'README.md'), ...listFiles(join(root, 'docs'), (name) => name.endsWith('.md'))]
      .filter((file) => !file.includes(join('docs', 'site')))
      .map((file) => ({ file, codes: safeRead(file) })),
  ];
  return sources.flatMap(({ file, codes }) =>
    codes.map((code, index) => ({ source: relative(root, file), index, code })),
  );
}

function safeRead(file: string): string[] {
  try {
    return examplesInMarkdown(file);
  } catch {
    return [];
  }
}

function localise(code: string): string {
  const index = pathToFileURL(join(root, 'src', 'index.ts')).href;
  const testing = pathToFileURL(join(root, 'src', 'testing.ts')).href;
  return `${code.replaceAll("from 'loopsafe/testing'", `from '${testing}'`).replaceAll("from 'loopsafe'", `from '${index}'`)}\nexport {};\n`;
}

/** `console.log(…); // expected` lines, with their 1-based line numbers. */
function expectedOutputs(code: string): { line: number; expected: string }[] {
  return code.split('\n').flatMap((text, index) => {
    const match = /console\.log\(.*\);\s*\/\/\s*(.+)$/.exec(text);
    return match?.[1] === undefined ? [] : [{ line: index + 1, expected: match[1] }];
  });
}

/** The output matches the comment's start (the rest may explain it), spacing aside. */
function sameOutput(actual: string, expected: string): boolean {
  const squash = (text: string): string => text.replace(/\s+/g, '').replaceAll('"', "'");
  const head = squash(expected.split(/,\s|\s\(|:\s/)[0] ?? '');
  return squash(actual).startsWith(head) && head.length > 0;
}

const examples = collect();
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
afterAll(() => {
  rmSync(outDir, { recursive: true, force: true });
});

describe('documentation examples', () => {
  it('finds the examples', () => {
    expect(examples.length).toBeGreaterThan(20);
  });

  it.each(examples.map((example) => [`${example.source} #${String(example.index + 1)}`, example] as const))(
    '%s runs',
    async (_name, example) => {
      const file = join(outDir, `${example.source.replace(/[^\w]+/g, '_')}_${String(example.index)}.ts`);
      writeFileSync(file, localise(example.code));
      // Record what each line logs, to hold the `console.log(x); // expected` comments to it.
      const logged = new Map<number, string[]>();
      const log = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
        const frame = (new Error().stack ?? '').split('\n').find((line) => line.includes(file));
        const line = Number(/:(\d+):\d+\)?$/.exec(frame ?? '')?.[1]);
        const text = args.map((arg) => (typeof arg === 'string' ? `'${arg}'` : inspect(arg))).join(' ');
        logged.set(line, [...(logged.get(line) ?? []), text]);
      });
      try {
        await import(pathToFileURL(file).href);
      } finally {
        log.mockRestore();
      }
      for (const { line, expected } of expectedOutputs(example.code)) {
        const seen = logged.get(line) ?? [];
        expect({ line, output: seen.some((text) => sameOutput(text, expected)) ? expected : seen }).toEqual({ line, output: expected });
      }
    },
    5_000,
  );
});
