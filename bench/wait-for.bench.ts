/**
 * Per-call cost of a timeout around an already-resolved operation, without
 * and with a long-lived parent signal, as ratios to hand-written baselines in
 * the same run: loopsafe safeWaitFor / withTimeout against the plainest, fastest
 * code a strong engineer writes by hand (a promise that clears its timer when
 * the work settles; an inner AbortController that follows the parent through one
 * listener), AbortSignal.timeout / AbortSignal.any, p-timeout, abort-controller-x,
 * cockatiel and effect. The baselines used before issue 13 (Promise.race with
 * .finally, async/await) stay as rows marked "before", so the Node 20 figures
 * committed then can still be compared with (bench/report.ts).
 *
 * Run: node --import tsx bench/wait-for.bench.ts   (--quick for a smoke run, --json for machine-readable output)
 */
import { abortable } from 'abort-controller-x';
import { TimeoutStrategy, timeout as cockatielTimeout } from 'cockatiel';
import { Duration, Effect } from 'effect';
import pTimeout from 'p-timeout';
import { setMaxListeners } from 'node:events';
import { safeWaitFor, TimeoutError, withTimeout } from '../src/index.js';
import { emit, flags, ratioTarget, timeInTwoPasses } from './lib/harness.js';
import { targets } from './lib/targets.js';

const CALLS = flags.calls ?? (flags.quick ? 5_000 : 50_000);
const ROUNDS = flags.rounds ?? (flags.quick ? 1 : 5);
/** Longer than a run lasts: no timer (ours or a peer's, e.g. AbortSignal.timeout's) fires while others are timed. */
const MS = 3_600_000;

const RACE = 'hand-written race';
const RACE_BEFORE = 'hand-written race (before: Promise.race + .finally)';
const INNER = 'hand-written inner AbortController';
const INNER_BEFORE = 'hand-written inner AbortController (before: async + Promise.race)';

/** Floor without a parent: one promise, one timer, cleared when the work settles. */
function race<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error('timeout'));
    }, ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/**
 * Floor with a parent: an AbortController for the task, one abort listener on
 * the parent, a timer; the listener is removed and the timer cleared when the
 * task settles. The parent's abort or the timeout rejects at once and aborts the
 * task's signal.
 */
function innerController<T>(fn: (signal: AbortSignal) => Promise<T>, ms: number, parent: AbortSignal): Promise<T> {
  if (parent.aborted) return Promise.reject(parent.reason);
  return new Promise((resolve, reject) => {
    const controller = new AbortController();
    const onAbort = (): void => {
      clearTimeout(timer);
      controller.abort(parent.reason);
      reject(parent.reason);
    };
    const timer = setTimeout(() => {
      parent.removeEventListener('abort', onAbort);
      const error = new Error('timeout');
      controller.abort(error);
      reject(error);
    }, ms);
    parent.addEventListener('abort', onAbort);
    fn(controller.signal).then(
      (value) => {
        clearTimeout(timer);
        parent.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        parent.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** The race used as the floor before issue 13: Promise.race + setTimeout + .finally(clearTimeout). */
function raceBefore<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error('timeout'));
      }, ms);
    }),
  ]).finally(() => {
    clearTimeout(timer);
  });
}

/** The inner controller used as the floor before issue 13: async/await around a Promise.race. */
async function innerControllerBefore<T>(
  fn: (signal: AbortSignal) => Promise<T>,
  ms: number,
  parent: AbortSignal,
): Promise<T> {
  const controller = new AbortController();
  const onAbort = (): void => {
    controller.abort(parent.reason);
  };
  parent.addEventListener('abort', onAbort);
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      fn(controller.signal),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const error = new Error('timeout');
          controller.abort(error);
          reject(error);
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    parent.removeEventListener('abort', onAbort);
  }
}

/** A task that reads its signal, as real work would. */
const task = (signal: AbortSignal): Promise<number> =>
  signal.aborted ? Promise.reject(signal.reason) : Promise.resolve(1);

/** Resolves when `promise` does, rejects when `signal` aborts; removes its listener either way. */
function untilAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort);
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

const cockatielPolicy = cockatielTimeout(MS, TimeoutStrategy.Aggressive);
const effectTimeout = Duration.millis(MS);

function noParent(): Record<string, () => Promise<unknown>> {
  return {
    [RACE]: () => race(Promise.resolve(1), MS),
    [RACE_BEFORE]: () => raceBefore(Promise.resolve(1), MS),
    'loopsafe safeWaitFor(promise)': () => safeWaitFor(Promise.resolve(1), MS),
    'loopsafe safeWaitFor(fn)': () => safeWaitFor(task, MS),
    'loopsafe withTimeout(fn)': () => withTimeout(MS, () => Promise.resolve(1)),
    'AbortSignal.timeout + listener': () => {
      const signal = AbortSignal.timeout(MS);
      return untilAbort(task(signal), signal);
    },
    'p-timeout': () => pTimeout(Promise.resolve(1), { milliseconds: MS }),
    'cockatiel timeout policy': () => cockatielPolicy.execute(({ signal }) => task(signal)),
    'effect Effect.timeout': () =>
      Effect.runPromise(
        Effect.timeout(
          Effect.tryPromise((signal) => task(signal)),
          effectTimeout,
        ),
      ),
  };
}

function withParent(parent: AbortSignal): Record<string, () => Promise<unknown>> {
  return {
    [INNER]: () => innerController(task, MS, parent),
    [INNER_BEFORE]: () => innerControllerBefore(task, MS, parent),
    'loopsafe safeWaitFor(fn, { signal })': () => safeWaitFor(task, { timeout: MS, signal: parent }),
    'loopsafe withTimeout(fn, { signal })': () => withTimeout(MS, (scope) => task(scope.signal), { signal: parent }),
    'AbortSignal.any([parent, timeout])': () => {
      const signal = AbortSignal.any([parent, AbortSignal.timeout(MS)]);
      return untilAbort(task(signal), signal);
    },
    'p-timeout { signal }': () => pTimeout(Promise.resolve(1), { milliseconds: MS, signal: parent }),
    'abort-controller-x abortable + timer': () => {
      const timer = setTimeout(() => undefined, MS);
      return abortable(parent, task(parent)).finally(() => {
        clearTimeout(timer);
      });
    },
    'cockatiel timeout policy (parent)': () => cockatielPolicy.execute(({ signal }) => task(signal), parent),
    'effect Effect.timeout (parent)': () =>
      Effect.runPromise(
        Effect.timeout(
          Effect.tryPromise((signal) => task(signal)),
          effectTimeout,
        ),
        { signal: parent },
      ),
  };
}

/** What a timeout costs when it does fire: creating the error (a plain Error for scale). */
function errorCosts(): { name: string; usPerCall: number }[] {
  const sink: unknown[] = [];
  const time = (make: () => unknown): number => {
    for (let i = 0; i < 20_000; i++) sink[i & 255] = make();
    const started = performance.now();
    for (let i = 0; i < CALLS; i++) sink[i & 255] = make();
    return Number((((performance.now() - started) * 1000) / CALLS).toFixed(3));
  };
  return [
    {
      name: 'new TimeoutError()',
      usPerCall: time(() => new TimeoutError(undefined, { scopeName: 'a', timeoutMs: 1 })),
    },
    { name: "new Error('timeout')", usPerCall: time(() => new Error('timeout')) },
  ];
}

/** Peers are timed in a second pass, apart from the rows the targets divide (see timeInTwoPasses). */
const isPeer = (name: string): boolean => !name.startsWith('hand-written') && !name.startsWith('loopsafe');

async function main(): Promise<void> {
  const parent = new AbortController().signal;
  setMaxListeners(0, parent);
  // Node keeps one list per timer duration and creates it for the first pending timer of that
  // duration: without another timer of MS pending, every sequential call would pay for creating
  // and dropping the list. One stays pending throughout, as in a service with other work in flight.
  const inFlight = setTimeout(() => undefined, MS).unref();
  const tables = {
    ...(await timeInTwoPasses(
      {
        noParent: { candidates: noParent(), baseline: RACE },
        withParent: { candidates: withParent(parent), baseline: INNER },
      },
      CALLS,
      ROUNDS,
      isPeer,
    )),
    errors: errorCosts(),
  };
  clearTimeout(inFlight);
  emit(
    {
      bench: 'timeout',
      node: process.version,
      quick: flags.quick,
      params: { calls: CALLS, rounds: ROUNDS },
      tables,
      targets: [
        ratioTarget(targets.timeoutPromise, tables, 'noParent', 'loopsafe safeWaitFor(promise)', RACE),
        ratioTarget(targets.timeoutParent, tables, 'withParent', 'loopsafe safeWaitFor(fn, { signal })', INNER),
        ratioTarget(targets.withTimeout, tables, 'noParent', 'loopsafe withTimeout(fn)', RACE),
      ],
      failures: [],
      notes: [
        'p-timeout gives the task no signal of its own: its row is a race, not a cancellation; abort-controller-x has no timeout helper, so its row is abortable(parent, …) plus a timer it clears (no task signal either)',
        "peers (every row but the hand-written and loopsafe ones) are timed in a second pass beside the baseline, their ratio to that pass's baseline: the garbage and the pending timers some leave behind (AbortSignal.timeout's lives until it fires) cannot slow the rows the targets divide",
        'rows marked "before" are the hand-written baselines used before issue 13, kept so the figures committed then stay comparable',
      ],
    },
    {
      noParent: 'No parent signal (µs per call; ratio to the hand-written race)',
      withParent: 'Task signal + long-lived parent signal (ratio to the hand-written inner AbortController)',
      errors: 'Creating the TimeoutError when a deadline does pass',
    },
  );
}

await main();
