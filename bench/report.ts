/**
 * Turns bench/results/<runtime>/*.json into the summary (between the
 * `<!-- results:start -->` / `<!-- results:end -->` markers of bench/README.md
 * and docs/benchmarks.md) and SVG charts rendered with vega-lite into
 * docs/media/: Node 24 first, Node 20 beside it (a column per runtime), the
 * targets of bench/lib/targets.ts, and each runtime's figures against the ones
 * committed before the run (bench/results/<runtime>/previous.json). Whatever
 * is missing — a runtime, a bench — shows as "—". Run by `npm run bench`; run
 * it alone to re-render from the committed results: npx tsx bench/report.ts
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import { rowValue, type BenchReport, type PreviousFigures, type PreviousTarget, type Target } from './lib/harness.js';
import { allTargets, type TargetSpec } from './lib/targets.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const resultsDir = join(here, 'results');
const mediaDir = join(root, 'docs', 'media');

const benchNames = [
  'scenarios',
  'timeout',
  'retry',
  'gather',
  'memory',
  'als',
  'http',
  'policies',
  'race',
  'tracing',
] as const;
type BenchName = (typeof benchNames)[number];

/** The results of one runtime (bench/results/<key>/). */
interface RuntimeResults {
  key: string;
  /** `Node 24`. */
  label: string;
  reports: Partial<Record<BenchName, BenchReport>>;
  previous: PreviousFigures | undefined;
}

function readJson(file: string): unknown {
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : undefined;
}

/** The runtimes with a results directory, Node 24 first, then newest first. */
function loadRuntimes(): RuntimeResults[] {
  const keys = existsSync(resultsDir)
    ? readdirSync(resultsDir, { withFileTypes: true })
        .filter((entry) => entry.isDirectory() && /^node\d+$/.test(entry.name))
        .map((entry) => entry.name)
    : [];
  const major = (key: string): number => Number(key.slice(4));
  keys.sort((a, b) => (a === 'node24' ? -1 : b === 'node24' ? 1 : major(b) - major(a)));
  return keys.map((key) => ({
    key,
    label: `Node ${String(major(key))}`,
    reports: Object.fromEntries(
      benchNames.flatMap((name) => {
        const report = readJson(join(resultsDir, key, `${name}.json`)) as BenchReport | undefined;
        return report === undefined ? [] : [[name, report]];
      }),
    ),
    previous: readJson(join(resultsDir, key, 'previous.json')) as PreviousFigures | undefined,
  }));
}

type Row = Record<string, unknown>;
const text = (value: unknown): string =>
  typeof value === 'string'
    ? value
    : typeof value === 'number' || typeof value === 'boolean'
      ? String(value)
      : JSON.stringify(value);
const cell = (value: unknown): string =>
  value === null || value === undefined || (typeof value === 'number' && Number.isNaN(value))
    ? '—'
    : text(value).replaceAll('|', '\\|');

function table(rows: readonly Row[], columns: readonly [string, string][]): string {
  const head = `| ${columns.map(([, title]) => title).join(' | ')} |\n|${columns.map(() => ' --- ').join('|')}|`;
  return `${head}\n${rows.map((row) => `| ${columns.map(([key]) => cell(row[key])).join(' | ')} |`).join('\n')}`;
}

const tableRows = (report: BenchReport | undefined, name: string): Row[] =>
  (report?.tables[name] as Row[] | undefined) ?? [];

/**
 * One table, a group of columns per runtime that has it: rows matched by
 * `name`, in the order they first appear (Node 24's first).
 */
function sideBySide(
  runtimes: readonly RuntimeResults[],
  bench: BenchName,
  tableName: string,
  columns: readonly [string, string][],
  derive: (row: Row) => Row = (row) => row,
): string | undefined {
  const present = runtimes.filter((rt) => tableRows(rt.reports[bench], tableName).length > 0);
  if (present.length === 0) return undefined;
  const names: string[] = [];
  const byRuntime = present.map((rt) => {
    const rows = new Map<string, Row>();
    for (const row of tableRows(rt.reports[bench], tableName)) {
      const name = String(row.name);
      if (!names.includes(name)) names.push(name);
      rows.set(name, derive(row));
    }
    return rows;
  });
  const merged = names.map((name) => {
    const out: Row = { name };
    present.forEach((rt, i) => {
      const row = byRuntime[i]?.get(name);
      for (const [key] of columns) out[`${rt.key}:${key}`] = row?.[key];
    });
    return out;
  });
  const cols: [string, string][] = [['name', 'Candidate']];
  for (const rt of present) {
    const when = rt.reports[bench]?.legacy === undefined ? '' : ' (before issue 13)';
    for (const [key, title] of columns) cols.push([`${rt.key}:${key}`, `${title}, ${rt.label}${when}`]);
  }
  return table(merged, cols);
}

async function chart(file: string, spec: vegaLite.TopLevelSpec): Promise<void> {
  const compiled = vegaLite.compile(spec);
  const view = new vega.View(vega.parse(compiled.spec), { renderer: 'none' });
  writeFileSync(join(mediaDir, file), await view.toSVG());
  view.finalize();
}

/**
 * Fonts large enough to read on a phone. A chart is one column of panels (a
 * row per runtime) about 640 px wide: the docs site shows it at that width on
 * a phone, scrolling inside its paragraph, so a 12 px label stays 12 px.
 */
const chartConfig = {
  font: 'system-ui, sans-serif',
  title: { fontSize: 15 },
  header: { labelFontSize: 13, labelFontWeight: 'bold' },
  axis: { labelFontSize: 12, titleFontSize: 12 },
  legend: { labelFontSize: 12 },
  text: { fontSize: 12 },
} as const;

/** Bars of `ratio` per candidate, a row of panels per runtime (`node`), and per `group` when given. */
function ratioChart(title: string, rows: readonly Row[], group?: string): vegaLite.TopLevelSpec {
  const values =
    group === undefined ? rows : rows.map((row) => ({ ...row, panel: `${String(row.node)} · ${String(row[group])}` }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    config: chartConfig,
    data: { values },
    facet: { row: { field: group === undefined ? 'node' : 'panel', type: 'nominal', title: null, sort: null } },
    spec: {
      width: 280,
      encoding: {
        y: { field: 'name', type: 'nominal', sort: null, title: null, axis: { labelLimit: 300 } },
        x: { field: 'ratio', type: 'quantitative', title: 'ratio to the hand-written baseline (lower is faster)' },
      },
      layer: [
        {
          mark: { type: 'bar' },
          encoding: {
            color: {
              condition: { test: "indexof(datum.name, 'loopsafe') === 0", value: '#2f7d4a' },
              value: '#9aa5b1',
            },
          },
        },
        {
          mark: { type: 'text', align: 'left', dx: 3 },
          encoding: { text: { field: 'ratio', type: 'quantitative', format: '.2~f' } },
        },
      ],
    },
    resolve: { scale: { y: 'independent', x: 'independent' } },
  };
}

/** `rows` of a table on every runtime, each tagged with the runtime's label (for a chart). */
function chartRows(runtimes: readonly RuntimeResults[], bench: BenchName, tableName: string, extra: Row = {}): Row[] {
  return runtimes.flatMap((rt) =>
    tableRows(rt.reports[bench], tableName).map((row) => ({ ...row, ...extra, node: rt.label })),
  );
}

const shown = (t: { value: number; unit: string }): string => `${String(t.value)}${t.unit}`;

/** The target of `spec` measured on `rt`, unless its figures predate the targets (legacy). */
function measured(rt: RuntimeResults, spec: TargetSpec): Target | undefined {
  const report = rt.reports[spec.bench as BenchName];
  if (report === undefined || report.legacy !== undefined) return undefined;
  return report.targets.find((t) => t.id === spec.id);
}

function targetsBlock(runtimes: readonly RuntimeResults[]): string {
  const rows = allTargets.map((spec) => {
    const row: Row = { description: spec.description, goal: `≤ ${String(spec.limit)}${spec.unit}` };
    for (const rt of runtimes) {
      const t = measured(rt, spec);
      row[rt.key] = t === undefined ? undefined : `${shown(t)} ${t.met ? 'met' : '**missed**'}`;
    }
    return row;
  });
  return table(rows, [
    ['description', 'Target'],
    ['goal', 'Goal'],
    ...runtimes.map((rt): [string, string] => [rt.key, `${rt.label}${rt.key === 'node24' ? ' (judged)' : ''}`]),
  ]);
}

/**
 * This run's figure, comparable with `previous`: the same candidate against the
 * baseline row the committed figure was measured against, when that row has
 * changed since (`previous.ratioOf.baseline`); else the target's own value.
 */
function comparable(
  rt: RuntimeResults,
  spec: TargetSpec,
  current: Target,
  previous: PreviousTarget,
): number | undefined {
  const was = previous.ratioOf;
  if (was === undefined || current.ratioOf === undefined || was.baseline === current.ratioOf.baseline)
    return current.value;
  const rows = tableRows(rt.reports[spec.bench as BenchName], was.table);
  const value = rowValue(rows, was.candidate, was.field) / rowValue(rows, was.baseline, was.field);
  return Number.isFinite(value) ? Number(value.toFixed(3)) : undefined;
}

function previousBlock(rt: RuntimeResults): string | undefined {
  const previous = rt.previous;
  if (previous === undefined) return undefined;
  const rows = allTargets.map((spec) => {
    const was = previous.targets.find((t) => t.id === spec.id);
    const now = measured(rt, spec);
    const row: Row = {
      description: spec.description,
      committed: was === undefined ? 'new target' : shown(was),
      now: now === undefined ? undefined : shown(now),
    };
    if (was === undefined || now === undefined) return row;
    const same = comparable(rt, spec, now, was);
    const other = was.ratioOf !== undefined && was.ratioOf.baseline !== now.ratioOf?.baseline;
    row.same =
      same === undefined
        ? `— (no row "${was.ratioOf?.baseline ?? ''}")`
        : `${String(same)}${was.unit}${other ? ` against "${was.ratioOf?.baseline ?? ''}"` : ''}`;
    if (same !== undefined) {
      const change = was.value === 0 ? same - was.value : ((same - was.value) / Math.abs(was.value)) * 100;
      row.change =
        was.value === 0
          ? `${change > 0 ? '+' : ''}${String(round3(change))}`
          : `${change > 0 ? '+' : ''}${change.toFixed(0)} %`;
      // Heap retained is V8 noise of a few hundred KB either way: judged on its limit alone.
      row.verdict = spec.unit === ' MB' ? '(noise)' : same <= was.value ? 'not worse' : '**worse**';
    }
    return row;
  });
  const sources =
    previous.source ?? [...new Set(previous.targets.map((t) => t.source.replace(/: .*$/, '')))].join('; ');
  return `### ${rt.label} against the committed figures\n\nNo ${rt.label} figure may get worse than the one committed before this run. The committed figures, kept in \`bench/results/${rt.key}/previous.json\`, are ${sources}. A committed ratio was measured against the hand-written baseline of its time; where that baseline has been rewritten since, this run measures the old one too (its row is named "before") and is compared on it. Heap retained is V8 noise of a few hundred KB either way, judged on its limit alone.\n\n${table(
    rows,
    [
      ['description', 'Target'],
      ['committed', 'Committed'],
      ['now', 'This run'],
      ['same', 'Compared (same baseline as committed)'],
      ['change', 'Change'],
      ['verdict', ''],
    ],
  )}`;
}

const round3 = (value: number): number => Number(value.toFixed(3));

function header(runtimes: readonly RuntimeResults[]): string {
  const lines: string[] = [];
  const versions = runtimes.map((rt) => {
    const reports = Object.values(rt.reports);
    const node = [...new Set(reports.map((r) => r.node))].join(', ');
    const dates = [...new Set(reports.flatMap((r) => (r.date === undefined ? [] : [r.date.slice(0, 10)])))];
    const undated = reports.some((r) => r.date === undefined);
    const when = dates.length === 0 ? '' : `, run ${dates.join(', ')}${undated ? ' and before' : ''}`;
    return `**${rt.label}** (${node === '' ? 'no results' : node}${when})`;
  });
  if (runtimes.length === 0) return 'No results in `bench/results/` yet: run `npm run bench`.';
  lines.push(
    `Measured with \`npm run bench\` on ${versions[0] ?? ''}${versions.length > 1 ? ` and, beside it, ${versions.slice(1).join(' and ')}` : ''}, 2 cores, shared machine. The targets are judged on Node 24; the other runtimes are reported. Ratios are to a hand-written baseline measured in the same process run; absolute times on these machines are noise.`,
  );
  for (const key of ['node24', 'node20', 'node26']) {
    if (!runtimes.some((rt) => rt.key === key))
      lines.push(`- Node ${key.slice(4)}: no results in \`bench/results/${key}/\` yet.`);
  }
  for (const rt of runtimes) {
    const missing = benchNames.filter((name) => rt.reports[name] === undefined);
    if (missing.length > 0) lines.push(`- ${rt.label}: no results yet for ${missing.join(', ')}.`);
    const legacy = benchNames.filter((name) => rt.reports[name]?.legacy !== undefined);
    if (legacy.length > 0)
      lines.push(
        `- ${rt.label} ${legacy.join(', ')}: ${rt.reports[legacy[0] as BenchName]?.legacy ?? ''}. Their tables below are those figures, their baseline rows the previous implementations.`,
      );
  }
  const [intro = '', ...notes] = lines;
  return notes.length === 0 ? intro : `${intro}\n\n${notes.join('\n')}`;
}

async function main(): Promise<void> {
  mkdirSync(mediaDir, { recursive: true });
  const runtimes = loadRuntimes();
  const parts: string[] = [header(runtimes)];
  if (runtimes.length > 0) {
    parts.push(
      `### Targets\n\n${targetsBlock(runtimes)}\n\nA missed target is reported as missed; the baselines are not tuned. "—": not measured (no results, or figures from before these targets).`,
    );
  }
  for (const rt of runtimes) {
    const block = previousBlock(rt);
    if (block !== undefined) parts.push(block);
  }

  const withScenarios = runtimes.filter((rt) => rt.reports.scenarios !== undefined);
  if (withScenarios.length > 0) {
    parts.push('### Deadlock scenarios, as npm run demo runs them');
    for (const rt of withScenarios) {
      const rows = tableRows(rt.reports.scenarios, 'scenarios');
      parts.push(
        `${rt.label} (${rt.reports.scenarios?.node ?? ''}):\n\n${table(
          rows.map((r) => ({
            ...r,
            scenarioTitle: `${String(r.scenario)}. ${String(r.title)}`,
            variant: `${String(r.kind)}: \`${String(r.label)}\``,
            settled: r.settledMs ?? 'hung',
            figures: Object.entries((r.metrics ?? {}) as Record<string, unknown>)
              .map(([k, v]) => `${k} ${text(v)}`)
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
        )}`,
      );
    }
    const leftovers = withScenarios.flatMap((rt) =>
      tableRows(rt.reports.scenarios, 'scenarios').map((r) => ({
        node: rt.label,
        scenario: `${String(r.scenario)}. ${String(r.title)}`,
        kind: r.kind,
        left:
          Number(r.workRunning) +
          Number(r.timersLeft) +
          Number(r.listenersLeft) +
          Number(r.unhandledRejections) +
          (r.hung === true ? 1 : 0),
      })),
    );
    await chart('scenarios.svg', {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: {
        text: 'Left behind after settling',
        subtitle: 'work + timers + listeners + unhandled rejections; a hang counts 1',
      },
      config: chartConfig,
      data: { values: leftovers },
      facet: { row: { field: 'node', type: 'nominal', title: null, sort: null } },
      spec: {
        width: 280,
        encoding: {
          y: { field: 'scenario', type: 'nominal', sort: null, title: null, axis: { labelLimit: 300 } },
          yOffset: { field: 'kind', sort: ['naive', 'loopsafe'] },
          // A symlog scale starts at 0, where "nothing left" is: a log scale has no 0, and drew no bar at all.
          x: { field: 'left', type: 'quantitative', scale: { type: 'symlog' }, title: 'things left (symlog scale)' },
        },
        layer: [
          {
            mark: 'bar',
            encoding: {
              color: {
                field: 'kind',
                type: 'nominal',
                scale: { domain: ['naive', 'loopsafe'], range: ['#c2513d', '#2f7d4a'] },
                title: null,
              },
            },
          },
          {
            mark: { type: 'text', align: 'left', dx: 3, fontSize: 11 },
            encoding: { text: { field: 'left', type: 'quantitative' } },
          },
        ],
      },
    });
    parts.push('![Left behind per scenario](media/scenarios.svg)');
  }

  const timed: [string, string][] = [
    ['usPerCall', 'µs / call'],
    ['ratio', 'Ratio'],
  ];
  const timeoutNoParent = sideBySide(runtimes, 'timeout', 'noParent', timed);
  const timeoutParent = sideBySide(runtimes, 'timeout', 'withParent', timed);
  if (timeoutNoParent !== undefined || timeoutParent !== undefined) {
    parts.push('### Timeout around an already-resolved operation');
    if (timeoutNoParent !== undefined)
      parts.push(
        `Without a parent signal (ratio to the hand-written race: one promise, one timer cleared when the work settles):\n\n${timeoutNoParent}`,
      );
    if (timeoutParent !== undefined)
      parts.push(
        `With a task signal and a long-lived parent signal (ratio to the hand-written inner \`AbortController\`: one listener on the parent and one timer, both removed when the task settles):\n\n${timeoutParent}`,
      );
    const errors = sideBySide(runtimes, 'timeout', 'errors', [['usPerCall', 'µs']]);
    if (errors !== undefined)
      parts.push(`What a deadline that does pass costs to report (creating the error):\n\n${errors}`);
    await chart(
      'timeout.svg',
      ratioChart(
        'Timeout around a resolved operation',
        [
          ...chartRows(runtimes, 'timeout', 'noParent', { table: 'no parent signal' }),
          ...chartRows(runtimes, 'timeout', 'withParent', { table: 'task + parent signal' }),
        ],
        'table',
      ),
    );
    parts.push('![Timeout ratios](media/timeout.svg)');
  }

  const retrySuccess = sideBySide(runtimes, 'retry', 'success', timed);
  if (retrySuccess !== undefined) {
    parts.push('### Retry');
    parts.push(`Success path (ratio to the hand-written loop: a promise chain, three attempts):\n\n${retrySuccess}`);
    const failTwice = sideBySide(runtimes, 'retry', 'failTwice', timed);
    if (failTwice !== undefined) parts.push(`Fail twice, then succeed, every library at a zero delay:\n\n${failTwice}`);
    await chart('retry.svg', ratioChart('Retry, success path', chartRows(runtimes, 'retry', 'success')));
    parts.push('![Retry ratios](media/retry.svg)');
  }

  const gatherCols: [string, string][] = [
    ['wallMs', 'Wall (ms)'],
    ['ratio', 'Ratio'],
    ['peakHeapKb', 'Peak heap (KB)'],
  ];
  const immediate = sideBySide(runtimes, 'gather', 'immediate', gatherCols);
  if (immediate !== undefined) {
    parts.push('### Gather: 10,000 tasks at concurrency 100');
    parts.push(
      `Each task waits one macrotask (ratio to the hand-written pool + AbortController: one signal shared by every task, aborted at the first failure):\n\n${immediate}`,
    );
    const microtask = sideBySide(runtimes, 'gather', 'microtask', gatherCols);
    if (microtask !== undefined) parts.push(`Each task awaits a resolved promise (pure overhead):\n\n${microtask}`);
    const failCols: [string, string][] = [
      ['rejectedAfterMs', 'Rejected after the failure (ms)'],
      ['notAborted', 'Siblings not aborted at the rejection'],
      ['stillRunningAtRejection', 'Still running at the rejection'],
    ];
    // Figures from before issue 13 counted the aborted siblings instead.
    const notAborted = (row: Row): Row => ({
      ...row,
      notAborted:
        row.notAbortedAtRejection ??
        (typeof row.siblingsAborted === 'number' ? Number(row.runningAtFailure) - row.siblingsAborted : undefined),
    });
    const fail99 = sideBySide(runtimes, 'gather', 'failFast', failCols, notAborted);
    if (fail99 !== undefined)
      parts.push(`Fail-fast: 1,000 tasks of 50 ms at concurrency 100, one fails while 99 siblings run:\n\n${fail99}`);
    const fail9999 = sideBySide(runtimes, 'gather', 'failFast9999', failCols, notAborted);
    if (fail9999 !== undefined)
      parts.push(
        `Fail-fast: 10,000 tasks at concurrency 10,000, one fails while 9,999 siblings run (each until aborted):\n\n${fail9999}`,
      );
    await chart(
      'gather.svg',
      ratioChart(
        'Gather, 10,000 tasks at concurrency 100 (macrotask workload)',
        chartRows(runtimes, 'gather', 'immediate'),
      ),
    );
    parts.push('![Gather ratios](media/gather.svg)');
  }

  const memory = sideBySide(runtimes, 'memory', 'memory', [
    ['listeners', 'Listeners left'],
    ['retainedKb', 'Heap retained after GC (KB)'],
    ['bytesPerOp', 'Bytes / op'],
  ]);
  if (memory !== undefined) {
    parts.push('### What 100,000 operations on one long-lived signal leave behind');
    parts.push(memory);
  }

  const als = sideBySide(runtimes, 'als', 'als', [
    ['usPerCall', 'µs / call'],
    ['ratio', 'Ratio to no context'],
  ]);
  if (als !== undefined) {
    parts.push('### Ambient propagation through AsyncLocalStorage');
    parts.push(als);
    await chart(
      'als.svg',
      ratioChart('Ten awaits: ambient context cost per Node version', chartRows(runtimes, 'als', 'als')),
    );
    parts.push('![Ambient propagation](media/als.svg)');
  }

  const breaker = sideBySide(runtimes, 'policies', 'breaker', timed);
  if (breaker !== undefined) {
    parts.push('### Resilience policies');
    parts.push(
      `\`CircuitBreaker.run\` in the closed state, every call succeeding (ratio to a bare call of the same async function; cockatiel timed in a second pass, its ratio to that pass's bare call):\n\n${breaker}`,
    );
    const limiter = sideBySide(runtimes, 'policies', 'limiter', timed);
    if (limiter !== undefined)
      parts.push(
        `\`RateLimiter.acquire()\` with tokens available (ratio to awaiting an already-resolved promise, the floor of any awaited call):\n\n${limiter}`,
      );
    // Virtual time: the same on every runtime, so the chart shows the first runtime's run.
    const outage = runtimes.find((rt) => rt.reports.policies !== undefined);
    const outageRows = tableRows(outage?.reports.policies, 'upstream');
    if (outageRows.length > 0) {
      await chart('breaker.svg', {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        title: {
          text: 'Requests reaching a failing upstream',
          subtitle: [
            '100 requests/s for 60 s of virtual time; the upstream fails every request from 10 s to 40 s;',
            'the breaker opens after 5 failures in a row, for openMs = 5 s, then lets one trial through',
          ],
        },
        config: chartConfig,
        data: { values: outageRows },
        width: 560,
        height: 240,
        layer: [
          {
            mark: { type: 'rect', color: '#c2513d', opacity: 0.12 },
            data: { values: [{ from: 10, to: 40 }] },
            encoding: { x: { field: 'from', type: 'quantitative' }, x2: { field: 'to' } },
          },
          {
            mark: { type: 'line', interpolate: 'step-after', strokeWidth: 2 },
            encoding: {
              x: { field: 'second', type: 'quantitative', title: 'time (s)' },
              y: { field: 'requests', type: 'quantitative', title: 'requests reaching the upstream per second' },
              color: {
                field: 'series',
                type: 'nominal',
                title: null,
                // Sorted as the bench emits them: without the breaker first (grey), with it (green).
                sort: null,
                scale: { range: ['#9aa5b1', '#2f7d4a'] },
                legend: { orient: 'bottom', direction: 'vertical', labelLimit: 500 },
              },
            },
          },
        ],
      });
      const reached = new Map<string, number>();
      for (const row of outageRows)
        reached.set(String(row.series), (reached.get(String(row.series)) ?? 0) + Number(row.requests));
      parts.push(
        `A failing upstream, in virtual time: 100 requests a second for 60 s, every one failing from 10 s to 40 s. Requests that reached it: ${[
          ...reached,
        ]
          .map(([series, count]) => `${String(count)} ${series}`)
          .join(', ')}.`,
      );
      parts.push('![Requests reaching a failing upstream](media/breaker.svg)');
    }
  }
  const race = sideBySide(runtimes, 'race', 'race', [
    ['usPerCall', 'µs / call'],
    ['ratio', 'Ratio to abort-controller-x race'],
  ]);
  if (race !== undefined) {
    parts.push('### Racing two tasks: `safeRace` against abort-controller-x');
    parts.push(race);
  }

  const block = `<!-- results:start -->\n${parts.join('\n\n')}\n<!-- results:end -->`;
  for (const file of [join(here, 'README.md'), join(root, 'docs', 'benchmarks.md')]) {
    const content = readFileSync(file, 'utf8');
    const start = content.indexOf('<!-- results:start -->');
    const end = content.indexOf('<!-- results:end -->');
    if (start === -1 || end === -1) throw new Error(`${file} has no results markers`);
    const adjusted = file.endsWith('README.md') ? block.replaceAll('](media/', '](../docs/media/') : block;
    writeFileSync(file, `${content.slice(0, start)}${adjusted}${content.slice(end + '<!-- results:end -->'.length)}`);
  }
  console.log(
    `rendered ${runtimes.map((rt) => rt.key).join(', ') || 'no'} results into bench/README.md and docs/benchmarks.md, charts into docs/media/`,
  );
}

await main();
