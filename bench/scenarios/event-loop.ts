/**
 * Scenario 9: a 300 ms synchronous block in a service taking a request every
 * 5 ms. Naive: nothing watches the loop; every request queued behind the block
 * is served late. loopsafe: monitorEventLoop sees the lag and a LoadShedder
 * answers 503 + Retry-After while the loop is overloaded.
 */
import { LoadShedder, monitorEventLoop } from '../../src/index.js';
import { sleep, type RunContext, type Scenario } from './types.js';

const ARRIVAL_EVERY_MS = 5;
const RUN_MS = 900;
const BLOCK_AT_MS = 200;
const BLOCK_MS = 300;

interface Outcome {
  served: number[];
  shed: number;
}

/** Drives the simulated service: requests arrive on a schedule, `handle` answers each. */
async function drive(ctx: RunContext, handle: (arrivedAt: number) => Promise<'served' | 'shed'>): Promise<Outcome> {
  const origin = performance.now();
  const outcome: Outcome = { served: [], shed: 0 };
  const inFlight: Promise<void>[] = [];
  let dispatched = 0;
  const tick = (): void => {
    const now = performance.now() - origin;
    // Requests that "arrived" while the loop was blocked are seen now, as a burst (the kernel queued them).
    while (dispatched * ARRIVAL_EVERY_MS <= Math.min(now, RUN_MS)) {
      const arrivedAt = origin + dispatched * ARRIVAL_EVERY_MS;
      dispatched++;
      const end = ctx.work.start();
      inFlight.push(
        new Promise<void>((resolve) => setImmediate(resolve))
          .then(() => handle(arrivedAt))
          .then((result) => {
            if (result === 'shed') outcome.shed++;
            else outcome.served.push(performance.now() - arrivedAt);
          })
          .finally(end),
      );
    }
  };
  const arrivals = setInterval(tick, ARRIVAL_EVERY_MS);
  const block = setTimeout(() => {
    const until = performance.now() + BLOCK_MS;
    while (performance.now() < until); // a synchronous JSON.parse of a huge body, a regex, a sync fs call…
  }, BLOCK_AT_MS);
  await sleep(RUN_MS + 20);
  clearInterval(arrivals);
  clearTimeout(block);
  tick();
  await Promise.all(inFlight);
  return outcome;
}

/** The request's own work: a 2 ms upstream call. */
const work = (): Promise<void> => sleep(2);

function report(ctx: RunContext, outcome: Outcome): string {
  const sorted = [...outcome.served].sort((a, b) => a - b);
  const pct = (p: number): number =>
    Number((sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0).toFixed(1));
  ctx.metric('served', sorted.length);
  ctx.metric('shed503', outcome.shed);
  ctx.metric('servedP50Ms', pct(0.5));
  ctx.metric('servedP99Ms', pct(0.99));
  return `${String(sorted.length)} served (p99 ${String(pct(0.99))} ms), ${String(outcome.shed)} shed with 503`;
}

export const blockedEventLoop: Scenario = {
  id: '9',
  title: 'Blocked event loop (300 ms sync block)',
  naive: {
    label: 'no lag monitor, serve everything',
    run: async (ctx) => {
      ctx.metric('lagSeenMs', 'not watched');
      const outcome = await drive(ctx, async () => {
        await work();
        return 'served';
      });
      return report(ctx, outcome);
    },
  },
  loopsafe: {
    label: 'monitorEventLoop + LoadShedder',
    maxMs: RUN_MS + 300,
    run: async (ctx) => {
      let lagSeen = 0;
      using monitor = monitorEventLoop({
        intervalMs: 50,
        onSample: (sample) => {
          lagSeen = Math.max(lagSeen, sample.maxLagMs);
        },
      });
      // LoadShedder goes by the window's worst lag, so the single 300 ms block is enough to shed.
      using shedder = new LoadShedder({ monitor, maxLagMs: 100 });
      const outcome = await drive(ctx, async () => {
        if (shedder.check().shed) return 'shed';
        await work();
        return 'served';
      });
      ctx.metric('lagSeenMs', Number(lagSeen.toFixed(1)));
      if (lagSeen < BLOCK_MS * 0.8)
        ctx.fail(`the monitor saw ${lagSeen.toFixed(1)} ms of lag, not ~${String(BLOCK_MS)} ms`);
      if (outcome.shed === 0) ctx.fail('nothing was shed while the loop was blocked');
      return report(ctx, outcome);
    },
  },
  watchdogMs: 3_000,
};
