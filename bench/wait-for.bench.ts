/**
 * Per-call cost of a timeout around an already-resolved operation, without
 * and with a long-lived parent signal, as ratios to hand-written baselines in
 * the same run: loopsafe safeWaitFor / withTimeout against Promise.race +
 * setTimeout + clearTimeout, an inner AbortController following the parent,
 * AbortSignal.timeout / AbortSignal.any, p-timeout, abort-controller-x,
 * cockatiel and effect.
 *
 * Run: npx tsx bench/wait-for.bench.ts   (--quick for a smoke run, --json for machine-readable output)
 */
import { abortable } from 'abort-controller-x';
import { TimeoutStrategy, timeout as cockatielTimeout } from 'cockatiel';
import { Duration, Effect } from 'effect';
import pTimeout from 'p-timeout';
import { setMaxListeners } from 'node:events';
import { createTimeoutError, TimeoutError } from '../src/errors.js';
import { safeWaitFor, withTimeout } from '../src/index.js';
import { emit, flags, target, timeCandidates, type TimedRow } from './lib/harness.js';

const CALLS = flags.quick ? 5_000 : 50_000;
const ROUNDS = flags.quick ? 1 : 5;
const MS = 60_000;

/** Floor without a parent: Promise.race + setTimeout + clearTimeout. */
function race<T>(promise: Promise<T>, ms: number): Promise<T> {
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

/** Floor with a parent: an inner AbortController for the task, following the parent, plus the race. */
async function innerController<T>(
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
    'hand-written race': () => race(Promise.resolve(1), MS),
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
    'hand-written inner AbortController': () => innerController(task, MS, parent),
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

/** What a timeout costs when it does fire: the error with a full stack, versus ours (stack taken later, at the await). */
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
      name: 'new TimeoutError() (stack captured)',
      usPerCall: time(() => new TimeoutError('x', { scopeName: 'a', timeoutMs: 1 })),
    },
    { name: 'loopsafe createTimeoutError (no stack yet)', usPerCall: time(() => createTimeoutError('a', 1)) },
  ];
}

const ratio = (rows: TimedRow[], name: string): number => rows.find((r) => r.name === name)?.ratio ?? Number.NaN;
const us = (rows: TimedRow[], name: string): number => rows.find((r) => r.name === name)?.usPerCall ?? Number.NaN;

async function main(): Promise<void> {
  const parent = new AbortController().signal;
  setMaxListeners(0, parent);
  const plain = await timeCandidates(noParent(), 'hand-written race', CALLS, ROUNDS);
  const parented = await timeCandidates(withParent(parent), 'hand-written inner AbortController', CALLS, ROUNDS);
  const pTimeoutParent = us(parented, 'p-timeout { signal }');
  emit(
    {
      bench: 'timeout',
      node: process.version,
      quick: flags.quick,
      params: { calls: CALLS, rounds: ROUNDS },
      tables: { noParent: plain, withParent: parented, errors: errorCosts() },
      targets: [
        target(
          'timeout.promise',
          'safeWaitFor(promise) vs hand-written race',
          ratio(plain, 'loopsafe safeWaitFor(promise)'),
          2,
        ),
        target(
          'timeout.parent',
          'safeWaitFor(fn, { signal }) vs hand-written inner controller',
          ratio(parented, 'loopsafe safeWaitFor(fn, { signal })'),
          1.5,
        ),
        target(
          'timeout.vsPTimeout',
          'safeWaitFor(fn, { signal }) vs p-timeout { signal }',
          us(parented, 'loopsafe safeWaitFor(fn, { signal })') / pTimeoutParent,
          0.3,
        ),
      ],
      failures: [],
      notes: [
        'p-timeout gives the task no signal of its own: its row is a race, not a cancellation; abort-controller-x has no timeout helper, so its row is abortable(parent, …) plus a timer it clears (no task signal either)',
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
