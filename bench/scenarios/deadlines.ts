/**
 * Scenarios 1–4 and 7: deadlines that do not hold in naive code.
 */
import pTimeout from 'p-timeout';
import { safeGather, safeSleep, withTimeout } from '../../src/index.js';
import { nextMacrotask, sleep, upstream, type RunContext, type Scenario } from './types.js';

/** 1. A call that never settles. */
export const hungUpstream: Scenario = {
  id: '1',
  title: 'Hung upstream',
  naive: {
    label: 'await upstream()',
    run: (ctx) => upstream(ctx, Infinity, 'profile'),
  },
  loopsafe: {
    label: 'withTimeout(100, s => upstream(s.signal))',
    maxMs: 150,
    run: (ctx) =>
      withTimeout(100, (scope) => upstream(ctx, Infinity, 'profile', scope.signal), {
        name: 'GET /profile',
        signal: ctx.parent,
      }),
  },
};

/** 2. Outer 100 ms around inner 5 s; the inner work takes 2 s. */
export const nestedTimeouts: Scenario = {
  id: '2',
  title: 'Nested timeouts (100 ms around 5 s)',
  naive: {
    label: 'pTimeout(pTimeout(work, 5 s), 100 ms)',
    run: (ctx) => pTimeout(pTimeout(upstream(ctx, 2_000, 'report'), { milliseconds: 5_000 }), { milliseconds: 100 }),
  },
  loopsafe: {
    label: 'withTimeout(100, () => withTimeout(5 s, …))',
    maxMs: 150,
    run: (ctx) =>
      withTimeout(
        100,
        () => withTimeout(5_000, (inner) => upstream(ctx, 2_000, 'report', inner.signal), { name: 'inner 5 s' }),
        { name: 'outer 100 ms', signal: ctx.parent },
      ),
  },
};

const FAN_OUT = 10_000;

/** 3. 10,000 tasks of 500 ms; task 0 fails at 10 ms. */
function fanOut(ctx: RunContext): { tasks: ((signal?: AbortSignal) => Promise<number>)[]; report: () => void } {
  let failedAt = 0;
  const tasks = Array.from(
    { length: FAN_OUT },
    (_, i) => (signal?: AbortSignal) =>
      i === 0
        ? upstream(ctx, 10, 0, signal, new Error('shard 0 down')).catch((error: unknown) => {
            failedAt = performance.now();
            throw error;
          })
        : upstream(ctx, 500, i, signal),
  );
  ctx.metric('tasks', FAN_OUT);
  const report = (): void => {
    ctx.metric('rejectedAfterFailureMs', Number((performance.now() - failedAt).toFixed(3)));
    ctx.metric('siblingsRunningAtRejection', ctx.work.running);
  };
  return { tasks, report };
}

export const failFastFanOut: Scenario = {
  id: '3',
  title: 'Fail-fast fan-out (10,000 tasks)',
  naive: {
    label: 'Promise.all(tasks.map(t => t()))',
    run: async (ctx) => {
      const { tasks, report } = fanOut(ctx);
      try {
        return await Promise.all(tasks.map((task) => task()));
      } finally {
        report();
      }
    },
  },
  loopsafe: {
    label: 'safeGather(tasks)',
    maxMs: 1_000,
    run: async (ctx) => {
      const { tasks, report } = fanOut(ctx);
      try {
        return await safeGather(tasks, { signal: ctx.parent, name: 'fan-out' });
      } finally {
        report();
        if (ctx.work.running !== 0)
          ctx.fail(`${String(ctx.work.running)} siblings still running when the gather rejected`);
      }
    },
  },
};

const TIMEOUT_MS = 50;
const SLICE_MS = 20;
const LOOP_MS = 400;

/** CPU-bound work in 20 ms slices, yielding between slices; `check` runs inside the busy loop. */
async function crunch(ctx: RunContext, check?: () => void): Promise<string> {
  const end = ctx.work.start();
  try {
    const until = performance.now() + LOOP_MS;
    let slices = 0;
    while (performance.now() < until) {
      const sliceEnd = performance.now() + SLICE_MS;
      while (performance.now() < sliceEnd) check?.();
      slices++;
      await nextMacrotask();
    }
    return `${String(slices)} slices done`;
  } finally {
    end();
  }
}

/** 4. A timer cannot fire while a slice runs. */
export const starvedTimer: Scenario = {
  id: '4',
  title: 'Starved timer (CPU loop in 20 ms slices, 50 ms timeout)',
  naive: {
    label: 'pTimeout(crunch(), 50 ms)',
    run: async (ctx) => {
      const started = performance.now();
      try {
        return await pTimeout(crunch(ctx), { milliseconds: TIMEOUT_MS });
      } finally {
        ctx.metric('lateByMs', Number((performance.now() - started - TIMEOUT_MS).toFixed(1)));
      }
    },
  },
  loopsafe: {
    label: 'withTimeout(50, s => crunch(s.check))',
    maxMs: TIMEOUT_MS + 10,
    run: async (ctx) => {
      const started = performance.now();
      try {
        return await withTimeout(
          TIMEOUT_MS,
          (scope) =>
            crunch(ctx, () => {
              scope.check();
            }),
          { name: 'crunch', signal: ctx.parent },
        );
      } finally {
        const late = performance.now() - started - TIMEOUT_MS;
        ctx.metric('lateByMs', Number(late.toFixed(1)));
        if (late > 5) ctx.fail(`the cooperative check stopped the loop ${late.toFixed(1)} ms late`);
      }
    },
  },
};

const HUGE_MS = 2 ** 31;

/** 7. Node clamps a delay above 2^31−1 to 1 ms. */
export const timerOverflow: Scenario = {
  id: '7',
  title: 'Timer overflow (sleep 2^31 ms)',
  naive: {
    label: 'setTimeout(resolve, 2 ** 31)',
    run: async (ctx) => {
      const started = performance.now();
      await new Promise((resolve) => setTimeout(resolve, HUGE_MS));
      const ms = performance.now() - started;
      ctx.metric('firedAfterMs', Number(ms.toFixed(1)));
      return `woke after ${ms.toFixed(1)} ms, not 24.9 days`;
    },
  },
  loopsafe: {
    label: 'safeSleep(2 ** 31, { signal })',
    maxMs: 150,
    run: async (ctx) => {
      const controller = new AbortController();
      const state = { woke: false };
      const sleeping = safeSleep(HUGE_MS, { signal: controller.signal }).then(() => {
        state.woke = true;
      });
      await sleep(100);
      ctx.metric('stillSleepingAt100Ms', state.woke ? 'no' : 'yes');
      if (state.woke) ctx.fail('safeSleep(2 ** 31) woke early');
      controller.abort(new Error('shutdown'));
      await sleeping.catch(() => undefined);
      return 'still asleep at 100 ms; stopped by abort';
    },
  },
};
