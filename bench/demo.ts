/**
 * The deadlock-scenario suite: nine failure modes of everyday async code, the
 * naive version a real service would write beside the loopsafe version.
 *
 * Each variant runs in a fresh child process (so what one leaves behind —
 * timers, listeners, running work — cannot blur another's numbers), bounded by
 * a watchdog. Reported per variant: settled or hung, time to settle, work
 * still running afterwards, abort listeners left on the service's long-lived
 * signal, timers left, unhandled rejections, plus each scenario's own figures.
 *
 * Run: npm run demo            — prints the table; exits 0 only when every loopsafe run is bounded and clean
 *      … -- --json             — one JSON report on stdout (used by bench/run.ts)
 *      … -- --only 3,6         — a subset
 */
import { setMaxListeners } from 'node:events';
import { fileURLToPath } from 'node:url';
import { isAbortError, isTimeoutError, GatherError, TimeoutError } from '../src/index.js';
import { activeTimers, abortListeners, flags, runJsonChild, type BenchReport } from './lib/harness.js';
import { failFastFanOut, hungUpstream, nestedTimeouts, starvedTimer, timerOverflow } from './scenarios/deadlines.js';
import { listenerLeak, lockOrderDeadlock, retryStorm } from './scenarios/contention.js';
import { blockedEventLoop } from './scenarios/event-loop.js';
import { WorkTracker, type RunContext, type Scenario } from './scenarios/types.js';

export const scenarios: readonly Scenario[] = [
  hungUpstream,
  nestedTimeouts,
  failFastFanOut,
  starvedTimer,
  retryStorm,
  lockOrderDeadlock,
  timerOverflow,
  listenerLeak,
  blockedEventLoop,
];

type Kind = 'naive' | 'loopsafe';

export interface VariantResult {
  scenario: string;
  title: string;
  kind: Kind;
  label: string;
  outcome: string;
  hung: boolean;
  settledMs: number | null;
  workRunning: number;
  listenersLeft: number;
  timersLeft: number;
  unhandledRejections: number;
  metrics: Record<string, string | number>;
  failures: string[];
}

function describeOutcome(ok: boolean, value: unknown): string {
  if (ok) {
    if (typeof value === 'string') return value;
    return value === undefined
      ? 'fulfilled'
      : `fulfilled: ${typeof value === 'number' || typeof value === 'boolean' ? String(value) : 'a value'}`;
  }
  if (value instanceof TimeoutError) return `TimeoutError (${value.scopeName})`;
  if (isTimeoutError(value)) return 'TimeoutError (p-timeout)';
  if (value instanceof GatherError)
    return `GatherError: ${value.cause instanceof Error ? value.cause.message : String(value.cause)}`;
  if (isAbortError(value)) return 'AbortError';
  return `rejected: ${value instanceof Error ? value.message : String(value)}`;
}

/** Child mode: runs one variant and prints its result as one JSON line. */
async function runChild(id: string, kind: Kind): Promise<void> {
  const scenario = scenarios.find((s) => s.id === id);
  if (scenario === undefined) throw new Error(`no scenario ${id}`);
  const variant = scenario[kind];
  const watchdogMs = scenario.watchdogMs ?? 1_000;
  let unhandled = 0;
  process.on('unhandledRejection', () => {
    unhandled++;
  });
  process.on('warning', () => undefined); // MaxListenersExceeded, TimeoutOverflow: run with --no-warnings, counted elsewhere
  const service = new AbortController();
  setMaxListeners(0, service.signal);
  const metrics: Record<string, string | number> = {};
  const failures: string[] = [];
  const work = new WorkTracker();
  const ctx: RunContext = {
    parent: service.signal,
    work,
    watchdogMs,
    metric: (name, value) => {
      metrics[name] = value;
    },
    fail: (message) => {
      failures.push(message);
    },
  };
  const timersBefore = activeTimers();
  let watchdog: NodeJS.Timeout | undefined;
  const started = performance.now();
  const settled = await Promise.race([
    variant.run(ctx).then(
      (value: unknown) => ({ ok: true, value, at: performance.now() }),
      (error: unknown) => ({ ok: false, value: error, at: performance.now() }),
    ),
    new Promise<undefined>((resolve) => {
      watchdog = setTimeout(() => {
        resolve(undefined);
      }, watchdogMs);
    }),
  ]);
  clearTimeout(watchdog);
  await new Promise((resolve) => setTimeout(resolve, variant.graceMs ?? 20));
  const settledMs = settled === undefined ? null : Number((settled.at - started).toFixed(1));
  if (kind === 'loopsafe') {
    if (settledMs === null) failures.push(`hung (watchdog at ${String(watchdogMs)} ms)`);
    else if (variant.maxMs !== undefined && settledMs > variant.maxMs)
      failures.push(`took ${String(settledMs)} ms (bound ${String(variant.maxMs)} ms)`);
  }
  const result: VariantResult = {
    scenario: scenario.id,
    title: scenario.title,
    kind,
    label: variant.label,
    outcome:
      settled === undefined
        ? `HUNG (watchdog at ${String(watchdogMs)} ms)`
        : describeOutcome(settled.ok, settled.value),
    hung: settled === undefined,
    settledMs,
    workRunning: work.running,
    listenersLeft: abortListeners(service.signal),
    timersLeft: activeTimers() - timersBefore,
    unhandledRejections: unhandled,
    metrics,
    failures,
  };
  if (kind === 'loopsafe') {
    if (result.workRunning !== 0) failures.push(`${String(result.workRunning)} units of work still running`);
    if (result.listenersLeft !== 0)
      failures.push(`${String(result.listenersLeft)} listeners left on the service signal`);
    if (result.timersLeft > 0) failures.push(`${String(result.timersLeft)} timers left`);
    if (result.unhandledRejections !== 0) failures.push(`${String(result.unhandledRejections)} unhandled rejections`);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0)); // the naive run's leftovers must not hold the process
}

const self = fileURLToPath(import.meta.url);

function spawnVariant(id: string, kind: Kind): Promise<VariantResult> {
  return runJsonChild<VariantResult>(self, ['--child', id, kind]);
}

export async function runScenarios(only?: ReadonlySet<string>): Promise<VariantResult[]> {
  const results: VariantResult[] = [];
  for (const scenario of scenarios) {
    if (only !== undefined && !only.has(scenario.id)) continue;
    for (const kind of ['naive', 'loopsafe'] as const) results.push(await spawnVariant(scenario.id, kind));
  }
  return results;
}

const fmt = (value: number | null): string => (value === null ? '—' : String(value));

export function scenarioTable(results: readonly VariantResult[]): Record<string, string | number>[] {
  return results.map((r) => ({
    scenario: `${r.scenario}. ${r.title}`,
    variant: `${r.kind}: ${r.label}`,
    outcome: r.outcome,
    settledMs: fmt(r.settledMs),
    workRunning: r.workRunning,
    listeners: r.listenersLeft,
    timers: r.timersLeft,
    unhandled: r.unhandledRejections,
    figures: Object.entries(r.metrics)
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(' '),
  }));
}

async function main(): Promise<void> {
  const childAt = process.argv.indexOf('--child');
  if (childAt !== -1) {
    await runChild(process.argv[childAt + 1] ?? '', process.argv[childAt + 2] === 'loopsafe' ? 'loopsafe' : 'naive');
    return;
  }
  const onlyAt = process.argv.indexOf('--only');
  const only = onlyAt === -1 ? undefined : new Set((process.argv[onlyAt + 1] ?? '').split(','));
  const started = performance.now();
  const results = await runScenarios(only);
  const failures = results.flatMap((r) => r.failures.map((f) => `scenario ${r.scenario} (${r.kind}): ${f}`));
  const report: BenchReport = {
    bench: 'scenarios',
    node: process.version,
    quick: flags.quick,
    params: { wallSeconds: Number(((performance.now() - started) / 1000).toFixed(1)) },
    tables: { scenarios: results },
    targets: [],
    failures,
    notes: [],
  };
  if (flags.json) {
    console.log(JSON.stringify(report));
  } else {
    console.log(
      `loopsafe deadlock scenarios — naive code beside loopsafe (Node ${process.version}, each run in its own process)\n`,
    );
    for (const row of scenarioTable(results)) {
      console.log(
        `${String(row.scenario)}\n  ${String(row.variant)}\n    → ${String(row.outcome)} | settled ${String(row.settledMs)} ms | running ${String(row.workRunning)} | listeners ${String(row.listeners)} | timers ${String(row.timers)} | unhandled ${String(row.unhandled)}${row.figures === '' ? '' : `\n    ${String(row.figures)}`}`,
      );
    }
    console.log(`\n${String(report.params.wallSeconds)} s`);
    if (failures.length > 0) console.error(`\nFAILED:\n  ${failures.join('\n  ')}`);
    else
      console.log(
        'Every loopsafe run settled on time and left nothing behind: no work running, no listeners, no timers, no unhandled rejections.',
      );
  }
  if (failures.length > 0) process.exitCode = 1;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await main();
