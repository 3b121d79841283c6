/**
 * The deadline engine in three scenarios, naive code beside loopsafe:
 *   1. a hung upstream call,
 *   2. nested timeouts (outer 100 ms around inner 5 s),
 *   3. a CPU-bound loop that starves every timer.
 *
 * Run: npm run demo   — exits 0 only when every loopsafe run is bounded and clean.
 */
import pTimeout from 'p-timeout';
import { isTimeoutError, pendingScopes, safeSleep, TimeoutError, withTimeout } from '../src/index.js';

/** Gives up on a naive run that hangs, so the demo itself can never hang. */
const WATCHDOG_MS = 1_500;

interface Row {
  scenario: string;
  variant: string;
  outcome: string;
  settledMs: string;
  workStillRunning: string;
}

const rows: Row[] = [];
const failures: string[] = [];

async function watch<T>(start: () => Promise<T>): Promise<{ outcome: string; ms: number; hung: boolean }> {
  const started = performance.now();
  const work = start();
  let timer: NodeJS.Timeout | undefined;
  const watchdog = new Promise<'hung'>((resolve) => {
    timer = setTimeout(() => { resolve('hung'); }, WATCHDOG_MS);
  });
  const result = await Promise.race([
    work.then(
      (value) => `fulfilled: ${String(value)}`,
      (error: unknown) =>
        isTimeoutError(error)
          ? `TimeoutError (${error instanceof TimeoutError ? error.scopeName : 'p-timeout'})`
          : `rejected: ${String(error)}`,
    ),
    watchdog,
  ]);
  clearTimeout(timer);
  const ms = performance.now() - started;
  return { outcome: result === 'hung' ? `HUNG (watchdog at ${String(WATCHDOG_MS)} ms)` : result, ms, hung: result === 'hung' };
}

function record(scenario: string, variant: string, run: { outcome: string; ms: number; hung: boolean }, running: string): void {
  rows.push({ scenario, variant, outcome: run.outcome, settledMs: run.hung ? '—' : run.ms.toFixed(1), workStillRunning: running });
}

/** 1. An upstream call that never answers. */
async function hungUpstream(): Promise<void> {
  const hungCall = (): Promise<string> => new Promise(() => undefined);
  record('1. hung upstream', 'naive await', await watch(hungCall), 'forever');
  const bounded = await watch(() => withTimeout(100, hungCall, { name: 'GET /profile' }));
  record('1. hung upstream', 'loopsafe withTimeout(100)', bounded, 'no');
  if (bounded.hung || bounded.ms > 300) failures.push('hung upstream was not bounded');
}

/** 2. An inner 5 s timeout inside an outer 100 ms one. */
async function nestedTimeouts(): Promise<void> {
  const naiveState = { innerDone: false };
  const naiveInner = async (): Promise<string> => {
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // keeps going after the outer gave up
    naiveState.innerDone = true;
    return 'inner finished';
  };
  const naive = await watch(() => pTimeout(pTimeout(naiveInner(), { milliseconds: 5_000 }), { milliseconds: 100 }));
  record('2. nested timeouts', 'naive p-timeout(p-timeout)', naive, naiveState.innerDone ? 'no' : 'yes (inner still sleeping)');

  let innerCancelledAt = Number.NaN;
  const started = performance.now();
  const bounded = await watch(() =>
    withTimeout(
      100,
      () =>
        withTimeout(
          5_000,
          async (inner) => {
            inner.signal.addEventListener('abort', () => (innerCancelledAt = performance.now() - started));
            await safeSleep(1_000);
            return 'inner finished';
          },
          { name: 'inner 5 s' },
        ),
      { name: 'outer 100 ms' },
    ),
  );
  record('2. nested timeouts', 'loopsafe withTimeout nested', bounded, Number.isNaN(innerCancelledAt) ? 'yes' : `no (cancelled at ${innerCancelledAt.toFixed(0)} ms)`);
  if (bounded.hung || bounded.ms > 300 || Number.isNaN(innerCancelledAt)) failures.push('nested deadline did not cancel the inner work');
}

/** 3. A CPU-bound loop: no timer can fire until it yields. */
async function starvedTimer(): Promise<void> {
  const LOOP_MS = 400;
  const busy = (check?: () => void): string => {
    const end = performance.now() + LOOP_MS;
    let spins = 0;
    while (performance.now() < end) {
      spins++;
      check?.();
    }
    return `${String(spins)} spins`;
  };
  const naive = await watch(() => pTimeout(Promise.resolve().then(() => busy()), { milliseconds: 50 }));
  record('3. starved timer', 'timer-based timeout(50)', naive, 'no, but the 50 ms timeout never fired');
  const cooperative = await watch(() => withTimeout(50, (scope) => busy(() => { scope.check(); }), { name: 'crunch' }));
  record('3. starved timer', 'loopsafe scope.check()', cooperative, 'no (stopped at the deadline)');
  if (cooperative.hung || cooperative.ms > 150 || !cooperative.outcome.startsWith('TimeoutError')) failures.push('the cooperative check did not stop the loop at the deadline');
}

await hungUpstream();
await nestedTimeouts();
await starvedTimer();
await new Promise((resolve) => setTimeout(resolve, 1_100)); // let the naive inner work finish

console.log('loopsafe deadline engine — naive code beside loopsafe\n');
console.table(rows);
const leftover = pendingScopes().filter((scope) => !scope.overdue);
if (leftover.length > 0) failures.push(`open scopes left: ${leftover.map((s) => s.name).join(', ')}`);
if (failures.length > 0) {
  console.error(`\nFAILED: ${failures.join('; ')}`);
  process.exitCode = 1;
} else {
  console.log('\nEvery loopsafe run settled on time and left nothing running.');
}
