/**
 * Every `@example` in the TSDoc of src/ and every ```ts block in README.md and
 * docs/*.md is real code: this test extracts each one (with the shared
 * extractor in fixtures/doc-examples.ts), points its `loopsafe` imports at the
 * sources, and runs it. An example that throws, or does not finish, fails
 * here; so does a block marked not runnable without saying why.
 * scripts/check-doc-examples.ts type-checks the same blocks against the built
 * package.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { collectDocExamples, markdownSources, root } from './fixtures/doc-examples.js';

const outDir = join(root, '.tmp', 'examples');

/** What each line of the running example logged, filled by `__docLog`. */
const logged = new Map<number, string[]>();
(globalThis as { __docLog?: unknown }).__docLog = (line: number, ...args: unknown[]): void => {
  const text = args.map((arg) => (typeof arg === 'string' ? `'${arg}'` : inspect(arg))).join(' ');
  logged.set(line, [...(logged.get(line) ?? []), text]);
};

/**
 * Points `loopsafe` imports at the sources, and turns each `console.log(` on
 * line N into `__docLog(N, ` so the output is held to that line's comment
 * however the code is compiled. Standard (TC39) decorators, which Vitest's
 * transform leaves as they are and Node 20 cannot parse, are lowered by
 * TypeScript itself first.
 */
function localise(code: string): string {
  const index = pathToFileURL(join(root, 'src', 'index.ts')).href;
  const instrumented = code
    .split('\n')
    .map((text, i) => text.replaceAll('console.log(', `__docLog(${String(i + 1)}, `))
    .join('\n')
    // Every subpath (`loopsafe/testing`, `loopsafe/http`, the adapters) is its own file in src/.
    .replace(
      /from 'loopsafe\/([a-z-]+)'/g,
      (_, name: string) => `from '${pathToFileURL(join(root, 'src', `${name}.ts`)).href}'`,
    )
    .replaceAll("from 'loopsafe'", `from '${index}'`);
  const source = `${instrumented}\nexport {};\n`;
  if (!/^\s*@\w/m.test(code)) return source;
  return ts.transpileModule(source, {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, verbatimModuleSyntax: false },
  }).outputText;
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

const { examples, skipped, problems } = collectDocExamples();
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
afterAll(() => {
  rmSync(outDir, { recursive: true, force: true });
});

describe('documentation examples', () => {
  it('finds the examples', () => {
    expect(examples.length).toBeGreaterThan(20);
  });

  it('publishes every guide in docs/ on the site, in the order typedoc.json gives, and the landing page', () => {
    const config = JSON.parse(readFileSync(join(root, 'typedoc.json'), 'utf8')) as {
      projectDocuments: string[];
      readme: string;
    };
    const guides = markdownSources()
      .map((file) => relative(root, file))
      .filter((file) => file.startsWith('docs'));
    expect(config.readme).toBe('docs/index.md');
    expect(guides).toContain(config.readme);
    expect(guides.filter((guide) => guide !== config.readme && !config.projectDocuments.includes(guide))).toEqual([]);
  });

  it('runs every code block of the guides, or says why not', () => {
    expect(problems).toEqual([]);
    for (const block of skipped)
      expect(block.reason.length, `${block.source}:${String(block.line)}`).toBeGreaterThanOrEqual(10);
  });

  it.each(
    examples.map(
      (example) => [`${example.source}:${String(example.line)} (#${String(example.index + 1)})`, example] as const,
    ),
  )(
    '%s runs',
    async (_name, example) => {
      const file = join(outDir, `${example.source.replace(/[^\w]+/g, '_')}_${String(example.index)}.ts`);
      writeFileSync(file, localise(example.code));
      // Record what each line logs, to hold the `console.log(x); // expected` comments to it.
      logged.clear();
      await import(pathToFileURL(file).href);
      for (const { line, expected } of expectedOutputs(example.code)) {
        const seen = logged.get(line) ?? [];
        expect({ line, output: seen.some((text) => sameOutput(text, expected)) ? expected : seen }).toEqual({
          line,
          output: expected,
        });
      }
    },
    5_000,
  );
});
