/**
 * Turns bench/results/*.json into the summary tables (between the
 * `<!-- results:start -->` / `<!-- results:end -->` markers of bench/README.md
 * and docs/benchmarks.md) and SVG charts rendered with vega-lite into
 * docs/media/. Run by `npm run bench`; run it alone to re-render from the
 * committed results: npx tsx bench/report.ts
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import type { BenchReport, Target } from './lib/harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const mediaDir = join(root, 'docs', 'media');

function load(name: string): BenchReport | undefined {
  const file = join(here, 'results', `${name}.json`);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as BenchReport) : undefined;
}

type Row = Record<string, unknown>;
const text = (value: unknown): string =>
  typeof value === 'string'
    ? value
    : typeof value === 'number' || typeof value === 'boolean'
      ? String(value)
      : JSON.stringify(value);
const cell = (value: unknown): string =>
  value === null || value === undefined ? '—' : text(value).replaceAll('|', '\\|');

function table(rows: readonly Row[], columns: readonly [string, string][]): string {
  const head = `| ${columns.map(([, title]) => title).join(' | ')} |\n|${columns.map(() => ' --- ').join('|')}|`;
  return `${head}\n${rows.map((row) => `| ${columns.map(([key]) => cell(row[key])).join(' | ')} |`).join('\n')}`;
}

async function chart(file: string, spec: vegaLite.TopLevelSpec): Promise<void> {
  const compiled = vegaLite.compile(spec);
  const view = new vega.View(vega.parse(compiled.spec), { renderer: 'none' });
  writeFileSync(join(mediaDir, file), await view.toSVG());
  view.finalize();
}

function ratioChart(title: string, rows: readonly Row[], group?: string): vegaLite.TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 420,
    data: { values: rows },
    mark: { type: 'bar' },
    encoding: {
      y: { field: 'name', type: 'nominal', sort: null, title: null, axis: { labelLimit: 320 } },
      x: { field: 'ratio', type: 'quantitative', title: 'ratio to the hand-written baseline (lower is faster)' },
      color: {
        condition: { test: "indexof(datum.name, 'loopsafe') === 0", value: '#2f7d4a' },
        value: '#9aa5b1',
      },
      ...(group === undefined ? {} : { row: { field: group, type: 'nominal', title: null } }),
    },
    resolve: { scale: { y: 'independent' } },
  };
}

function targetsBlock(targets: readonly Target[]): string {
  return table(
    targets.map((t) => ({
      ...t,
      status: t.met ? 'met' : '**missed**',
      shown: `${String(t.value)}${t.unit}`,
      goal: `≤ ${String(t.limit)}${t.unit}`,
    })),
    [
      ['description', 'Target'],
      ['shown', 'Measured'],
      ['goal', 'Goal'],
      ['status', ''],
    ],
  );
}

async function main(): Promise<void> {
  mkdirSync(mediaDir, { recursive: true });
  const scenarios = load('scenarios');
  const timeout = load('timeout');
  const retry = load('retry');
  const gather = load('gather');
  const memory = load('memory');
  const als20 = load('als');
  const als24 = load('als-node24');
  const parts: string[] = [];
  const node = timeout?.node ?? scenarios?.node ?? process.version;
  parts.push(
    `Measured with \`npm run bench\` on Node ${node} (2 cores, shared machine). Ratios are to a hand-written baseline measured in the same process run; absolute times on these machines are noise.`,
  );

  if (scenarios !== undefined) {
    const rows = (scenarios.tables.scenarios ?? []) as Row[];
    parts.push('### Deadlock scenarios (`npm run demo`)');
    parts.push(
      table(
        rows.map((r) => ({
          ...r,
          scenarioTitle: `${String(r.scenario)}. ${String(r.title)}`,
          variant: `${String(r.kind)}: \`${String(r.label)}\``,
          settled: r.settledMs ?? 'hung',
          figures: Object.entries(r.metrics ?? {})
            .map(([k, v]) => `${k} ${String(v)}`)
            .join(', '),
        })),
        [
          ['scenarioTitle', 'Scenario'],
          ['variant', 'Code'],
          ['outcome', 'Outcome'],
          ['settled', 'Settled (ms)'],
          ['workRunning', 'Work running after'],
          ['listenersLeft', 'Listeners left'],
          ['timersLeft', 'Timers left'],
          ['unhandledRejections', 'Unhandled rejections'],
          ['figures', 'Figures'],
        ],
      ),
    );
    const leftovers = rows.map((r) => ({
      scenario: `${String(r.scenario)}. ${String(r.title)}`,
      kind: r.kind,
      left:
        Number(r.workRunning) +
        Number(r.timersLeft) +
        Number(r.listenersLeft) +
        Number(r.unhandledRejections) +
        (r.hung === true ? 1 : 0),
    }));
    await chart('scenarios.svg', {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'Left behind after settling (work + timers + listeners + unhandled rejections; a hang counts 1)',
      width: 420,
      data: { values: leftovers },
      transform: [{ calculate: 'datum.left + 1', as: 'leftPlusOne' }],
      mark: 'bar',
      encoding: {
        y: { field: 'scenario', type: 'nominal', sort: null, title: null, axis: { labelLimit: 320 } },
        yOffset: { field: 'kind' },
        x: { field: 'leftPlusOne', type: 'quantitative', scale: { type: 'log' }, title: 'things left + 1 (log scale)' },
        color: {
          field: 'kind',
          type: 'nominal',
          scale: { domain: ['naive', 'loopsafe'], range: ['#c2513d', '#2f7d4a'] },
          title: null,
        },
      },
    });
    parts.push('![Left behind per scenario](media/scenarios.svg)');
  }

  if (timeout !== undefined) {
    const cols: [string, string][] = [
      ['name', 'Candidate'],
      ['usPerCall', 'µs / call'],
      ['ratio', 'Ratio'],
    ];
    parts.push('### Timeout around an already-resolved operation');
    parts.push(
      `Without a parent signal (ratio to a hand-written \`Promise.race\` + \`setTimeout\` + \`clearTimeout\`):\n\n${table((timeout.tables.noParent ?? []) as Row[], cols)}`,
    );
    parts.push(
      `With a task signal and a long-lived parent signal (ratio to a hand-written inner \`AbortController\` following the parent):\n\n${table((timeout.tables.withParent ?? []) as Row[], cols)}`,
    );
    const both = [
      ...((timeout.tables.noParent as Row[] | undefined) ?? []).map((r) => ({ ...r, table: 'no parent signal' })),
      ...((timeout.tables.withParent ?? []) as Row[]).map((r) => ({ ...r, table: 'task + parent signal' })),
    ];
    await chart('timeout.svg', ratioChart('Timeout around a resolved operation', both, 'table'));
    parts.push('![Timeout ratios](media/timeout.svg)');
  }

  if (retry !== undefined) {
    const cols: [string, string][] = [
      ['name', 'Candidate'],
      ['usPerCall', 'µs / call'],
      ['ratio', 'Ratio'],
    ];
    parts.push('### Retry');
    parts.push(
      `Success path (ratio to a hand-written try/catch loop):\n\n${table((retry.tables.success ?? []) as Row[], cols)}`,
    );
    parts.push(
      `Fail twice, then succeed, every library at a zero delay:\n\n${table((retry.tables.failTwice ?? []) as Row[], cols)}`,
    );
    await chart('retry.svg', ratioChart('Retry, success path', (retry.tables.success ?? []) as Row[]));
    parts.push('![Retry ratios](media/retry.svg)');
  }

  if (gather !== undefined) {
    const cols: [string, string][] = [
      ['name', 'Candidate'],
      ['wallMs', 'Wall (ms)'],
      ['ratio', 'Ratio'],
      ['peakHeapKb', 'Peak heap (KB)'],
      ['heapRatio', 'Heap ratio'],
    ];
    parts.push('### Gather: 10,000 tasks at concurrency 100');
    for (const [name, title] of [
      ['immediate', 'Each task waits one macrotask'],
      ['microtask', 'Each task awaits a resolved promise (pure overhead)'],
    ] as const) {
      if (gather.tables[name] !== undefined) parts.push(`${title}:\n\n${table(gather.tables[name] as Row[], cols)}`);
    }
    parts.push(
      `Fail-fast: 1,000 tasks of 50 ms at concurrency 100, one fails at 5 ms:\n\n${table(
        (gather.tables.failFast ?? []) as Row[],
        [
          ['name', 'Candidate'],
          ['rejectedAfterMs', 'Rejected after the failure (ms)'],
          ['runningAtFailure', 'Running at the failure'],
          ['siblingsAborted', 'Siblings aborted'],
          ['stillRunningAtRejection', 'Still running at rejection'],
        ],
      )}`,
    );
    await chart(
      'gather.svg',
      ratioChart(
        'Gather, 10,000 tasks at concurrency 100 (macrotask workload)',
        (gather.tables.immediate ?? []) as Row[],
      ),
    );
    parts.push('![Gather ratios](media/gather.svg)');
  }

  if (memory !== undefined) {
    parts.push('### What 100,000 operations on one long-lived signal leave behind');
    parts.push(
      table((memory.tables.memory ?? []) as Row[], [
        ['name', 'Candidate'],
        ['listeners', 'Listeners left'],
        ['retainedKb', 'Heap retained after GC (KB)'],
        ['bytesPerOp', 'Bytes / op'],
      ]),
    );
  }

  if (als20 !== undefined) {
    const rows = [als20, als24].flatMap((report) =>
      report === undefined ? [] : ((report.tables.als ?? []) as Row[]).map((r) => ({ ...r, node: report.node })),
    );
    parts.push('### Ambient propagation (`AsyncLocalStorage`), Node 20 and Node 24');
    parts.push(
      table(rows, [
        ['node', 'Node'],
        ['name', 'Candidate'],
        ['usPerCall', 'µs / call'],
        ['ratio', 'Ratio to no context'],
      ]),
    );
    await chart('als.svg', ratioChart('Ten awaits: ambient context cost per Node version', rows, 'node'));
    parts.push('![Ambient propagation](media/als.svg)');
  }

  const targets = [timeout, retry, gather, memory].flatMap((r) => r?.targets ?? []);
  if (targets.length > 0) {
    parts.splice(
      1,
      0,
      `### Targets\n\n${targetsBlock(targets)}\n\nA missed target is reported as missed; the baselines are not tuned.`,
    );
  }
  const block = `<!-- results:start -->\n${parts.join('\n\n')}\n<!-- results:end -->`;
  for (const file of [join(here, 'README.md'), join(root, 'docs', 'benchmarks.md')]) {
    const text = readFileSync(file, 'utf8');
    const start = text.indexOf('<!-- results:start -->');
    const end = text.indexOf('<!-- results:end -->');
    if (start === -1 || end === -1) throw new Error(`${file} has no results markers`);
    const adjusted = file.endsWith('README.md') ? block.replaceAll('](media/', '](../docs/media/') : block;
    writeFileSync(file, `${text.slice(0, start)}${adjusted}${text.slice(end + '<!-- results:end -->'.length)}`);
  }
  console.log('rendered the summary into bench/README.md and docs/benchmarks.md, charts into docs/media/');
}

await main();
