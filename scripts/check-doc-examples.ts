/**
 * Type-checks every documentation example — each TSDoc `@example` and each
 * ```ts block of README.md and docs/*.md — against the BUILT package, the way
 * a user's editor sees it: `import … from 'loopsafe'` resolves through
 * package.json `exports` to dist/*.d.ts (never to src/). test/examples.test.ts
 * runs the same blocks; both use the one extractor in
 * test/fixtures/doc-examples.ts.
 *
 * Run after `npm run build`: `tsx scripts/check-doc-examples.ts`.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { collectDocExamples, root } from '../test/fixtures/doc-examples.js';

const outDir = join(root, '.tmp', 'doc-types');

function fail(message: string): never {
  console.error(`check-doc-examples: ${message}`);
  process.exit(1);
}

for (const built of ['dist/index.d.ts', 'dist/testing.d.ts']) {
  if (!existsSync(join(root, built))) fail(`${built} is missing: run \`npm run build\` first.`);
}

const { examples, skipped, problems } = collectDocExamples();
if (problems.length > 0) fail(`\n  ${problems.join('\n  ')}`);

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const origin = new Map<string, { source: string; line: number }>();
for (const example of examples) {
  const file = join(outDir, `${example.source.replace(/[^\w]+/g, '_')}_${String(example.line)}.ts`);
  // Inside the package directory, 'loopsafe' is a self-reference: Node and
  // TypeScript resolve it through package.json `exports`, i.e. to dist/.
  writeFileSync(file, `${example.code}\nexport {};\n`);
  origin.set(file, { source: example.source, line: example.line });
}

const config = ts.readConfigFile(join(root, 'tsconfig.json'), (path) => ts.sys.readFile(path));
if (config.error !== undefined) fail(ts.flattenDiagnosticMessageText(config.error.messageText, '\n'));
const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root, { noEmit: true });
const program = ts.createProgram([...origin.keys()], parsed.options);

// Prove the examples were checked against dist/, not the sources.
const resolvedFrom = new Set(
  program
    .getSourceFiles()
    .map((file) => relative(root, file.fileName))
    .filter((file) => file.startsWith('dist/') || file.startsWith('src/')),
);
if ([...resolvedFrom].some((file) => file.startsWith('src/')))
  fail(`examples resolved 'loopsafe' to the sources: ${[...resolvedFrom].join(', ')}`);
if (!resolvedFrom.has('dist/index.d.ts'))
  fail(`'loopsafe' did not resolve to dist/index.d.ts (saw: ${[...resolvedFrom].join(', ') || 'nothing'})`);

const diagnostics = ts.getPreEmitDiagnostics(program);
for (const diagnostic of diagnostics) {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n    ');
  const file = diagnostic.file;
  const from = file === undefined ? undefined : origin.get(file.fileName);
  if (file === undefined || from === undefined || diagnostic.start === undefined) {
    console.error(`error TS${String(diagnostic.code)}: ${message}`);
    continue;
  }
  const { line } = file.getLineAndCharacterOfPosition(diagnostic.start);
  console.error(`${from.source}:${String(from.line + line)}: error TS${String(diagnostic.code)}: ${message}`);
}
if (diagnostics.length > 0) fail(`${String(diagnostics.length)} type error(s) in documentation examples.`);
rmSync(outDir, { recursive: true, force: true });
console.log(
  `check-doc-examples: ${String(examples.length)} examples type-check against dist/ ` +
    `(${String(skipped.length)} marked not runnable, each with its reason).`,
);
