/**
 * Bad input fails loudly at the call site (DESIGN.md, principle 9): an audit
 * of every public function and constructor of `loopsafe`, `loopsafe/testing`
 * and `loopsafe/otel`, written from their TSDoc and DESIGN.md.
 *
 * For each argument and each option, each bad value must throw synchronously
 * a `TypeError` or `RangeError` whose message names the argument (or option)
 * and shows the value received — whatever the other arguments are. So every
 * row runs on several valid calls, one per path the function can take (a
 * permit free or not, an aborted signal, an already-passed deadline, an empty
 * input, inside a cancelled ambient scope, …), and each option row runs once
 * more with a bad first argument too (then the error may name either).
 *
 * A row that fails because of a fault in code this suite does not fix is kept
 * in the table with a `todo` reason and reported as `it.todo`: flip it back by
 * deleting the reason once the fault is fixed.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { metrics, trace } from '@opentelemetry/api';
import { afterAll, describe, expect, it } from 'vitest';
import {
  backoff,
  BrokenCircuitError,
  captureScopeStacks,
  CircuitBreaker,
  KeyedRateLimiter,
  RateLimitError,
  RateLimiter,
  cooperativeForEach,
  GatherError,
  hedge,
  isAbortError,
  isBrokenCircuitError,
  isRateLimitError,
  isTimeoutError,
  LoadShedder,
  monitorEventLoop,
  Mutex,
  parseRetryAfter,
  progressiveDelay,
  QueueFullError,
  retry,
  RetryBudget,
  safeAsync,
  safeGather,
  safeGatherSettled,
  safeRace,
  safeSleep,
  safeWaitFor,
  Semaphore,
  singleFlight,
  systemClock,
  TimeoutError,
  timeoutContext,
  watchStalls,
  withDeadline,
  withSafeAsync,
  withTimeout,
  type EventLoopSample,
  type Jitter,
} from '../src/index.js';
import { instrument } from '../src/otel.js';
import { abortListenerCount, assertNoLeaks, createManualClock } from '../src/testing.js';

// ---------------------------------------------------------------------------
// The machinery: rows, contexts, and what a good error looks like.

interface BadDetails {
  /** What the message must contain to name the argument; defaults to the row's. */
  readonly names?: RegExp | undefined;
  /** What the message must contain to show the value; defaults to a rendering of `value`. */
  readonly shows?: RegExp | undefined;
  /** Why this value is a known fault elsewhere (the row is reported as `it.todo`). */
  readonly todo?: string | undefined;
}

/** A bad value, with what its error must name and show when that is not the row's default. */
class Bad implements BadDetails {
  readonly names: RegExp | undefined;
  readonly shows: RegExp | undefined;
  readonly todo: string | undefined;
  constructor(
    readonly value: unknown,
    details: BadDetails = {},
  ) {
    this.names = details.names;
    this.shows = details.shows;
    this.todo = details.todo;
  }
}

/** One argument (`index`), or one option (`key`) of the options bag at `index`, and its bad values. */
interface Arg {
  readonly index: number;
  readonly key?: string | undefined;
  /** The argument's name, as the TSDoc gives it (an option's is its key). */
  readonly name: string;
  /** Raw values, or {@link Bad} ones for a value with its own expectations or a todo. */
  readonly bad: readonly unknown[];
  /** What the message must contain; defaults to the name in backticks. */
  readonly names?: RegExp | undefined;
  /** A known fault elsewhere for every bad value of this argument. */
  readonly todo?: string | undefined;
}

/** A valid call, on one of the function's paths. */
interface Context {
  readonly label: string;
  readonly args: () => unknown[];
  /** Runs the call in a particular ambient state (inside a cancelled scope). */
  readonly around?: ((call: () => unknown) => unknown) | undefined;
}

/** The options bag at `index`: its non-object values and an unknown key are rows too. */
interface Bag {
  readonly index: number;
  /** The function name in its messages (`Unknown option … passed to safeSleep()`). */
  readonly fn: string;
  /** Values of another type the bag's position accepts (a number for `safeWaitFor`'s second argument). */
  readonly accepts?: readonly string[] | undefined;
  readonly todo?: string | undefined;
  /** A known fault for a non-object value of this bag. */
  readonly todoNonObject?: string | undefined;
  /** A known fault for an unknown key in this bag. */
  readonly todoUnknownKey?: string | undefined;
}

interface Spec {
  readonly title: string;
  readonly call: (args: unknown[]) => unknown;
  readonly contexts: readonly Context[];
  readonly args: readonly Arg[];
  readonly bags?: readonly Bag[] | undefined;
}

const bad = (value: unknown, details?: BadDetails): Bad => new Bad(value, details);
const asBad = (entry: unknown): Bad => (entry instanceof Bad ? entry : bad(entry));

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** How a value appears in a title. */
function label(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${String(value)}n`;
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return value.length === 0 ? '[]' : `[${value.map(label).join(', ')}]`;
  if (value instanceof Date) return 'a Date';
  if (typeof value === 'object' && value !== null && Object.getPrototypeOf(value) !== Object.prototype) {
    return `new ${(value as { constructor: { name: string } }).constructor.name}()`;
  }
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value);
    return entries.length === 0 ? '{}' : `{ ${entries.map(([k, v]) => `${k}: ${label(v)}`).join(', ')} }`;
  }
  return String(value);
}

/** What a message must contain to show the value received. */
function shows(value: unknown): RegExp {
  if (typeof value === 'string') return new RegExp(`["']${escape(value)}["']`);
  if (typeof value === 'bigint') return new RegExp(`${String(value)}n?\\b`);
  if (typeof value === 'number' || typeof value === 'boolean') {
    return new RegExp(`(^|[^\\w.])${escape(String(value))}(?![\\w.])`);
  }
  if (value === null) return /\bnull\b/;
  if (value === undefined) return /\bundefined\b/;
  if (typeof value === 'function') return /function/;
  if (Array.isArray(value)) return /array|\[/;
  if (value instanceof Date) return /Date/;
  return /object|\{/;
}

/** Makes whatever a call returned harmless: no unhandled rejection, no monitor or permit left running. */
function cleanUp(result: unknown): void {
  if (typeof result !== 'object' && typeof result !== 'function') return;
  if (result === null) return;
  const maybe = result as { then?: unknown; [Symbol.dispose]?: unknown; stop?: unknown };
  if (typeof maybe.then === 'function') {
    (result as PromiseLike<unknown>).then(cleanUp, () => undefined);
    return;
  }
  if (typeof maybe[Symbol.dispose] === 'function') (maybe as Disposable)[Symbol.dispose]();
  else if (typeof maybe.stop === 'function') (maybe as { stop(): void }).stop();
}

type Outcome = { threw: true; error: unknown } | { threw: false };

function attempt(call: () => unknown, around?: (call: () => unknown) => unknown): Outcome {
  try {
    const result = around === undefined ? call() : around(call);
    cleanUp(result);
    return { threw: false };
  } catch (error) {
    return { threw: true, error };
  }
}

/** Why an outcome is not a good error (naming `names`, showing `shown`), or `undefined` when it is. */
function problem(outcome: Outcome, names: readonly RegExp[], shown: RegExp | undefined): string | undefined {
  if (!outcome.threw) return 'did not throw synchronously';
  const { error } = outcome;
  if (!(error instanceof TypeError || error instanceof RangeError)) {
    return `threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}, not a TypeError or RangeError`;
  }
  if (!names.some((name) => name.test(error.message)))
    return `${error.name} "${error.message}" does not name ${names.join(' or ')}`;
  if (shown !== undefined && !shown.test(error.message))
    return `${error.name} "${error.message}" does not show ${String(shown)}`;
  return undefined;
}

/** Substitutes the bad value into a valid argument list. */
function substitute(args: unknown[], arg: Arg, value: unknown): unknown[] {
  const copy = [...args];
  while (copy.length <= arg.index) copy.push(undefined);
  if (arg.key === undefined) copy[arg.index] = value;
  else {
    const bag = copy[arg.index];
    copy[arg.index] = { ...(typeof bag === 'object' && bag !== null ? bag : {}), [arg.key]: value };
  }
  return copy;
}

/** Generates the tests of one spec: a test per (argument, bad value), run on every context. */
function audit(spec: Spec): void {
  describe(spec.title, () => {
    const first = spec.args.find((arg) => arg.index === 0 && arg.key === undefined);
    const firstBad: unknown = first === undefined ? undefined : first.bad.map((entry) => asBad(entry).value)[0];
    const rows: { arg: Arg; entry: Bad }[] = [];
    for (const arg of spec.args) for (const entry of arg.bad) rows.push({ arg, entry: asBad(entry) });
    for (const bagSpec of spec.bags ?? []) {
      const nonObjects: unknown[] = ['fast', 5, true, null, [], () => undefined];
      const options: Arg = { index: bagSpec.index, name: 'options', names: /options/, bad: [] };
      for (const value of nonObjects) {
        const type = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
        if (bagSpec.accepts?.includes(type) === true) continue;
        rows.push({ arg: options, entry: bad(value, { todo: bagSpec.todo ?? bagSpec.todoNonObject }) });
      }
      const unknownKey: Arg = { index: bagSpec.index, key: 'notAnOption', name: 'notAnOption', bad: [] };
      rows.push({
        arg: unknownKey,
        entry: bad(1, { names: /`?notAnOption`?/, shows: /notAnOption/, todo: bagSpec.todo ?? bagSpec.todoUnknownKey }),
      });
    }
    for (const { arg, entry } of rows) {
      const where = arg.key === undefined ? arg.name : `${arg.name} (option)`;
      const title = `${where} = ${label(entry.value)}`;
      const todo = entry.todo ?? arg.todo;
      if (todo !== undefined) {
        it.todo(`${title} — ${todo}`);
        continue;
      }
      it(title, () => {
        const names = [entry.names ?? arg.names ?? new RegExp(`\`${escape(arg.name)}\``)];
        const shown = entry.shows ?? shows(entry.value);
        const failures: string[] = [];
        for (const context of spec.contexts) {
          const args = substitute(context.args(), arg, entry.value);
          const why = problem(
            attempt(() => spec.call(args), context.around),
            names,
            shown,
          );
          if (why !== undefined) failures.push(`${context.label}: ${why}`);
          // An option is checked even when the first argument is bad too: then either may be named.
          if (arg.index > 0 && first !== undefined) {
            const both = substitute(args, first, firstBad);
            const firstNames = [...names, first.names ?? new RegExp(`\`${escape(first.name)}\``)];
            const whyBoth = problem(
              attempt(() => spec.call(both), context.around),
              firstNames,
              undefined,
            );
            if (whyBoth !== undefined)
              failures.push(`${context.label}, with ${first.name} = ${label(firstBad)} too: ${whyBoth}`);
          }
        }
        expect(failures).toEqual([]);
      });
    }
  });
}

// ---------------------------------------------------------------------------
// Shared valid values and contexts.

const clock = createManualClock();
const aborted = (): AbortSignal => AbortSignal.abort(new Error('aborted before the call'));
const fakeSignal = {}; // no aborted, addEventListener, removeEventListener
const fakeClock = { now: () => 0 }; // no setTimeout, clearTimeout
const ok = (): string => 'ok';

/** Runs `call` synchronously inside an ambient scope that is already cancelled: the early-exit path. */
function insideCancelledScope(call: () => unknown): unknown {
  let outcome: { value: unknown } | { error: unknown } | undefined;
  const running = withTimeout(
    Number.POSITIVE_INFINITY,
    (scope) => {
      scope.cancel(new Error('the ambient scope was cancelled'));
      try {
        outcome = { value: call() };
      } catch (error) {
        outcome = { error };
      }
    },
    { clock, name: 'cancelled' },
  );
  running.then(undefined, () => undefined);
  if (outcome === undefined) throw new Error('withTimeout did not run its function synchronously');
  if ('error' in outcome) throw outcome.error;
  return outcome.value;
}

/** A duration in ms: the values every duration argument must reject. */
const BAD_DURATIONS: readonly unknown[] = [
  -1,
  -Number.MIN_VALUE,
  Number.NaN,
  Number.NEGATIVE_INFINITY,
  '10',
  null,
  10n,
  {},
];
/** An AbortSignal option. */
const BAD_SIGNALS: readonly unknown[] = [fakeSignal, 'signal', null, 1, new EventTarget()];
/** A clock option. */
const BAD_CLOCKS: readonly unknown[] = [fakeClock, 'clock', null, 1];
/** A name option. */
const BAD_NAMES: readonly unknown[] = [5, null, {}, Symbol('name')];
/** A function option (`undefined` is its default). */
const BAD_FUNCTIONS: readonly unknown[] = ['fn', 5, null, {}];
/** A required function argument. */
const BAD_REQUIRED_FUNCTIONS: readonly unknown[] = [...BAD_FUNCTIONS, undefined];
/** An integer ≥ 1 (or Infinity). */
const BAD_COUNTS: readonly unknown[] = [0, -1, 1.5, Number.NaN, Number.NEGATIVE_INFINITY, '2', null];

const signalArg = (index: number): Arg => ({ index, key: 'signal', name: 'signal', bad: BAD_SIGNALS });
const clockArg = (index: number): Arg => ({ index, key: 'clock', name: 'clock', bad: BAD_CLOCKS });
const nameArg = (index: number): Arg => ({
  index,
  key: 'name',
  name: 'name',
  bad: BAD_NAMES.map((value) => (typeof value === 'symbol' ? bad(value, { shows: /Symbol\(name\)/ }) : value)),
});

afterAll(() => {
  captureScopeStacks(false);
});

// ---------------------------------------------------------------------------
// Scopes

audit({
  title: 'withTimeout(timeoutMs, fn, options)',
  call: (args) => withTimeout(...(args as Parameters<typeof withTimeout>)),
  contexts: [
    { label: 'a 10 ms scope', args: () => [10, ok, { clock }] },
    { label: 'a 0 ms scope (expired at once: fn is not called)', args: () => [0, ok, { clock }] },
    { label: 'an aborted signal', args: () => [Number.POSITIVE_INFINITY, ok, { clock, signal: aborted() }] },
    { label: 'inside a cancelled scope', args: () => [10, ok, {}], around: insideCancelledScope },
  ],
  args: [
    { index: 0, name: 'timeoutMs', bad: BAD_DURATIONS },
    { index: 1, name: 'fn', bad: BAD_REQUIRED_FUNCTIONS },
    signalArg(2),
    clockArg(2),
    nameArg(2),
  ],
  bags: [{ index: 2, fn: 'withTimeout' }],
});

audit({
  title: 'withDeadline(deadline, fn, options)',
  call: (args) => withDeadline(...(args as Parameters<typeof withDeadline>)),
  contexts: [
    { label: 'a deadline ahead', args: () => [clock.now() + 10, ok, { clock }] },
    { label: 'a deadline passed (fn is not called)', args: () => [Number.NEGATIVE_INFINITY, ok, { clock }] },
    { label: 'a Date', args: () => [new Date(Date.now() + 10), ok, { clock }] },
    { label: 'an aborted signal', args: () => [Number.POSITIVE_INFINITY, ok, { clock, signal: aborted() }] },
    { label: 'inside a cancelled scope', args: () => [clock.now() + 10, ok, {}], around: insideCancelledScope },
  ],
  args: [
    {
      index: 0,
      name: 'deadline',
      bad: [Number.NaN, '10', null, undefined, 10n, {}, bad(new Date(Number.NaN), { shows: /Invalid Date/ })],
    },
    { index: 1, name: 'fn', bad: BAD_REQUIRED_FUNCTIONS },
    signalArg(2),
    clockArg(2),
    nameArg(2),
  ],
  bags: [{ index: 2, fn: 'withDeadline' }],
});

audit({
  title: 'timeoutContext(timeoutMs, options)',
  call: (args) => timeoutContext(...(args as Parameters<typeof timeoutContext>)),
  contexts: [
    { label: 'a 10 ms context', args: () => [10, { clock }] },
    { label: 'a 0 ms context', args: () => [0, { clock }] },
    { label: 'an aborted signal', args: () => [Number.POSITIVE_INFINITY, { clock, signal: aborted() }] },
    { label: 'inside a cancelled scope', args: () => [10, {}], around: insideCancelledScope },
  ],
  args: [{ index: 0, name: 'timeoutMs', bad: BAD_DURATIONS }, signalArg(1), clockArg(1), nameArg(1)],
  bags: [{ index: 1, fn: 'timeoutContext' }],
});

audit({
  title: 'captureScopeStacks(enabled)',
  call: (args) => captureScopeStacks(...(args as Parameters<typeof captureScopeStacks>)),
  contexts: [{ label: 'a call', args: () => [] }],
  args: [{ index: 0, name: 'enabled', bad: ['yes', 1, 0, null, {}] }],
});

// ---------------------------------------------------------------------------
// Primitives

audit({
  title: 'safeSleep(ms, options)',
  call: (args) => safeSleep(...(args as Parameters<typeof safeSleep>)),
  contexts: [
    { label: 'a 10 ms sleep', args: () => [10, { clock }] },
    { label: 'safeSleep(0)', args: () => [0, { clock }] },
    { label: 'an endless sleep', args: () => [Number.POSITIVE_INFINITY, { clock }] },
    { label: 'an aborted signal', args: () => [10, { clock, signal: aborted() }] },
    { label: 'inside a cancelled scope', args: () => [10, {}], around: insideCancelledScope },
  ],
  args: [
    { index: 0, name: 'ms', bad: [...BAD_DURATIONS, undefined] },
    signalArg(1),
    clockArg(1),
    { index: 1, key: 'unref', name: 'unref', bad: ['yes', 1, 0, null] },
  ],
  bags: [{ index: 1, fn: 'safeSleep' }],
});

audit({
  title: 'safeWaitFor(task, timeout | options)',
  call: (args) => safeWaitFor(...(args as Parameters<typeof safeWaitFor>)),
  contexts: [
    { label: 'a promise', args: () => [Promise.resolve(1), { clock, timeout: 10 }] },
    { label: 'a function of a signal', args: () => [ok, { clock, timeout: 10 }] },
    { label: 'a promise and an aborted signal', args: () => [Promise.resolve(1), { clock, signal: aborted() }] },
    { label: 'a function and an aborted signal', args: () => [ok, { clock, signal: aborted() }] },
    {
      label: 'a promise, inside a cancelled scope',
      args: () => [Promise.resolve(1), {}],
      around: insideCancelledScope,
    },
    { label: 'a function, inside a cancelled scope', args: () => [ok, {}], around: insideCancelledScope },
  ],
  args: [
    { index: 0, name: 'task', bad: [5, 'task', null, undefined, {}, { then: 5 }] },
    { index: 1, key: 'timeout', name: 'timeout', bad: BAD_DURATIONS },
    signalArg(1),
    clockArg(1),
    nameArg(1),
    { index: 1, key: 'fallback', name: 'fallback', bad: BAD_FUNCTIONS },
  ],
  bags: [{ index: 1, fn: 'safeWaitFor', accepts: ['number'] }],
});

audit({
  title: 'safeWaitFor(task, timeoutMs): the number form',
  call: (args) => safeWaitFor(...(args as Parameters<typeof safeWaitFor>)),
  contexts: [
    { label: 'a promise', args: () => [Promise.resolve(1), 10] },
    { label: 'a function of a signal', args: () => [ok, 10] },
    {
      label: 'a promise, inside a cancelled scope',
      args: () => [Promise.resolve(1), 10],
      around: insideCancelledScope,
    },
  ],
  args: [{ index: 1, name: 'timeout', bad: [-1, Number.NaN, Number.NEGATIVE_INFINITY] }],
});

const gatherContexts = (label: string): Context[] => [
  { label: `${label}: one task`, args: () => [[ok], { clock }] },
  { label: `${label}: no task (settles at once)`, args: () => [[], { clock }] },
  { label: `${label}: a generator`, args: () => [(function* () {})(), { clock }] },
  { label: `${label}: an aborted signal`, args: () => [[ok], { clock, signal: aborted() }] },
  { label: `${label}: inside a cancelled scope`, args: () => [[ok], {}], around: insideCancelledScope },
];
const gatherArgs: Arg[] = [
  {
    index: 0,
    name: 'tasks',
    bad: [
      5,
      null,
      undefined,
      {},
      bad([ok, 'x'], { names: /`tasks\[1\]`/, shows: /"x"/ }),
      bad([null], { names: /`tasks\[0\]`/, shows: /null/ }),
      bad('', {}),
    ],
  },
  {
    index: 1,
    key: 'concurrency',
    name: 'concurrency',
    bad: BAD_COUNTS.map((value) => (value === null ? bad(value, {}) : value)),
  },
  {
    index: 1,
    key: 'timeout',
    name: 'timeout',
    bad: BAD_DURATIONS.map((value) => (value === null ? bad(value, {}) : value)),
  },
  signalArg(1),
  clockArg(1),
  nameArg(1),
];

audit({
  title: 'safeGather(tasks, options)',
  call: (args) => safeGather(...(args as Parameters<typeof safeGather>)),
  contexts: gatherContexts('safeGather'),
  args: gatherArgs,
  bags: [{ index: 1, fn: 'safeGather' }],
});

audit({
  title: 'safeGatherSettled(tasks, options)',
  call: (args) => safeGatherSettled(...(args as Parameters<typeof safeGatherSettled>)),
  contexts: gatherContexts('safeGatherSettled'),
  args: gatherArgs,
  bags: [{ index: 1, fn: 'safeGatherSettled' }],
});

audit({
  title: 'new Semaphore(permits, options)',
  call: (args) => new Semaphore(...(args as [number])),
  contexts: [{ label: 'two permits', args: () => [2] }],
  args: [
    { index: 0, name: 'permits', bad: [...BAD_COUNTS, undefined] },
    {
      index: 1,
      key: 'maxQueue',
      name: 'maxQueue',
      bad: [-1, 1.5, 'x', Number.NaN, Number.NEGATIVE_INFINITY, null, bad(10n, {})],
    },
    nameArg(1),
  ],
  bags: [{ index: 1, fn: 'Semaphore' }],
});

audit({
  title: 'new Mutex(options)',
  call: (args) => new Mutex(...(args as [])),
  contexts: [{ label: 'a mutex', args: () => [] }],
  args: [{ index: 0, key: 'maxQueue', name: 'maxQueue', bad: [-1, 1.5, 'x', null] }, nameArg(0)],
  bags: [{ index: 0, fn: 'Semaphore' }],
});

audit({
  title: 'new QueueFullError(semaphoreName, maxQueue, message)',
  call: (args) => new QueueFullError(...(args as [string, number])),
  contexts: [{ label: 'a full semaphore', args: () => ['db', 10] }],
  args: [
    { index: 0, name: 'semaphoreName', bad: [5, null, undefined, {}] },
    { index: 1, name: 'maxQueue', bad: [-1, 1.5, '10', null, undefined] },
    { index: 2, name: 'message', bad: [5, {}, null] },
  ],
});

// ---------------------------------------------------------------------------
// Resilience policies (part B): safeRace, hedge, singleFlight

const raceOptionArgs = (index: number): Arg[] => [
  {
    index,
    key: 'timeout',
    name: 'timeout',
    bad: BAD_DURATIONS.map((value) => (value === null ? bad(value, {}) : value)),
  },
  signalArg(index),
  clockArg(index),
  nameArg(index),
];

audit({
  title: 'safeRace(tasks, options)',
  call: (args) => safeRace(...(args as Parameters<typeof safeRace>)),
  contexts: [
    { label: 'one task', args: () => [[ok], { clock }] },
    { label: 'two tasks', args: () => [[ok, ok], { clock }] },
    { label: 'a Set', args: () => [new Set([ok]), { clock }] },
    { label: 'an aborted signal', args: () => [[ok], { clock, signal: aborted() }] },
    { label: 'inside a cancelled scope', args: () => [[ok], {}], around: insideCancelledScope },
  ],
  args: [
    {
      index: 0,
      name: 'tasks',
      bad: [
        5,
        null,
        undefined,
        {},
        'ab',
        bad([], { shows: /none/ }),
        bad(new Set(), { shows: /none/ }),
        bad([ok, 'x'], { names: /`tasks\[1\]`/, shows: /"x"/ }),
        bad([null], { names: /`tasks\[0\]`/, shows: /null/ }),
      ],
    },
    ...raceOptionArgs(1),
  ],
  bags: [{ index: 1, fn: 'safeRace' }],
});

audit({
  title: 'hedge(fn, options)',
  call: (args) => hedge(...(args as Parameters<typeof hedge>)),
  contexts: [
    { label: 'a delay', args: () => [ok, { delayMs: 10, clock }] },
    { label: 'three attempts', args: () => [ok, { delayMs: 10, maxAttempts: 3, clock }] },
    { label: 'no delay (failures only)', args: () => [ok, { delayMs: Number.POSITIVE_INFINITY, clock }] },
    { label: 'an aborted signal', args: () => [ok, { delayMs: 10, clock, signal: aborted() }] },
    { label: 'inside a cancelled scope', args: () => [ok, { delayMs: 10 }], around: insideCancelledScope },
  ],
  args: [
    { index: 0, name: 'fn', bad: BAD_REQUIRED_FUNCTIONS },
    { index: 1, key: 'delayMs', name: 'delayMs', bad: [...BAD_DURATIONS, undefined] },
    {
      index: 1,
      key: 'maxAttempts',
      name: 'maxAttempts',
      bad: [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '2', null],
    },
    ...raceOptionArgs(1),
  ],
  bags: [{ index: 1, fn: 'hedge' }],
});

audit({
  title: 'hedge(fn, options): options are required',
  call: (args) => hedge(...(args as Parameters<typeof hedge>)),
  contexts: [{ label: 'no options', args: () => [ok] }],
  args: [{ index: 1, name: 'options', names: /options/, bad: [undefined] }],
});

audit({
  title: 'singleFlight(fn, options)',
  call: (args) => singleFlight(...(args as Parameters<typeof singleFlight>)),
  contexts: [{ label: 'a function', args: () => [ok] }],
  args: [{ index: 0, name: 'fn', bad: BAD_REQUIRED_FUNCTIONS }, nameArg(1)],
  bags: [{ index: 1, fn: 'singleFlight' }],
});

const flight = singleFlight(function lookup(key: unknown) {
  return key;
});
audit({
  title: 'singleFlight(fn)(key, options)',
  call: ([load, ...rest]) => (load as typeof flight)(...(rest as Parameters<typeof flight>)),
  contexts: [
    { label: 'a fresh key', args: () => [flight, Symbol('key'), {}] },
    { label: 'an aborted signal', args: () => [flight, 'k', { signal: aborted() }] },
    { label: 'inside a cancelled scope', args: () => [flight, 'k', {}], around: insideCancelledScope },
  ],
  args: [signalArg(2)],
  bags: [{ index: 2, fn: 'lookup' }],
});

/** A semaphore with its one permit taken: acquire() queues. */
function exhausted(): Semaphore {
  const semaphore = new Semaphore(1);
  semaphore.tryAcquire();
  return semaphore;
}
const acquireContexts = (method: 'acquire' | 'run'): Context[] => {
  const first = method === 'run' ? [ok] : [];
  return [
    { label: 'a permit free', args: () => [new Semaphore(1), ...first, { clock }] },
    { label: 'no permit free (queued)', args: () => [exhausted(), ...first, { clock, timeout: 10 }] },
    { label: 'an aborted signal', args: () => [new Semaphore(1), ...first, { clock, signal: aborted() }] },
    { label: 'inside a cancelled scope', args: () => [new Semaphore(1), ...first, {}], around: insideCancelledScope },
    { label: 'a Mutex', args: () => [new Mutex(), ...first, { clock }] },
  ];
};
const acquireOptionArgs = (index: number): Arg[] => [
  {
    index,
    key: 'timeout',
    name: 'timeout',
    bad: BAD_DURATIONS.map((value) => (value === null ? bad(value, {}) : value)),
  },
  signalArg(index),
  clockArg(index),
];

audit({
  title: 'Semaphore.acquire(options) (and Mutex)',
  call: ([semaphore, ...rest]) => (semaphore as Semaphore).acquire(...(rest as Parameters<Semaphore['acquire']>)),
  contexts: acquireContexts('acquire'),
  args: acquireOptionArgs(1),
  bags: [{ index: 1, fn: 'acquire' }],
});

audit({
  title: 'Semaphore.run(fn, options) (and Mutex)',
  call: ([semaphore, ...rest]) => (semaphore as Semaphore).run(...(rest as Parameters<Semaphore['run']>)),
  contexts: acquireContexts('run'),
  args: [{ index: 1, name: 'fn', bad: BAD_REQUIRED_FUNCTIONS }, ...acquireOptionArgs(2)],
  bags: [{ index: 2, fn: 'acquire' }],
});

// ---------------------------------------------------------------------------
// Backoff and retry

const JITTERS: readonly Jitter[] = ['none', 'full', 'equal', 'decorrelated'];
const backoffOptionArgs = (index: number): Arg[] => [
  { index, key: 'initialMs', name: 'initialMs', bad: [...BAD_DURATIONS, Number.POSITIVE_INFINITY] },
  { index, key: 'maxMs', name: 'maxMs', bad: BAD_DURATIONS },
  { index, key: 'factor', name: 'factor', bad: [0.5, 0, -2, Number.NaN, Number.POSITIVE_INFINITY, '2', null] },
  { index, key: 'jitter', name: 'jitter', bad: ['half', '', 1, null, {}] },
  { index, key: 'random', name: 'random', bad: BAD_FUNCTIONS },
];

audit({
  title: 'backoff(options)',
  call: (args) => backoff(...(args as Parameters<typeof backoff>)),
  contexts: JITTERS.map((jitter) => ({ label: `jitter '${jitter}'`, args: () => [{ jitter }] })),
  args: backoffOptionArgs(0),
  bags: [{ index: 0, fn: 'backoff' }],
});

audit({
  title: 'backoff()(attempt, previousMs)',
  call: ([jitter, ...rest]) => backoff({ jitter: jitter as Jitter, random: () => 0.5 })(...(rest as [number, number?])),
  contexts: JITTERS.flatMap((jitter) => [
    { label: `jitter '${jitter}', attempt 1`, args: () => [jitter, 1] },
    { label: `jitter '${jitter}', attempt 3 after 100 ms`, args: () => [jitter, 3, 100] },
  ]),
  args: [
    { index: 1, name: 'attempt', bad: [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '1', null, undefined] },
    { index: 2, name: 'previousMs', bad: BAD_DURATIONS },
  ],
});

audit({
  title: 'progressiveDelay(attempt, options)',
  call: (args) => progressiveDelay(...(args as Parameters<typeof progressiveDelay>)),
  contexts: [
    ...JITTERS.map((jitter) => ({ label: `jitter '${jitter}'`, args: () => [2, { jitter, clock }] })),
    { label: 'an aborted signal', args: () => [2, { clock, signal: aborted() }] },
    { label: 'inside a cancelled scope', args: () => [2, {}], around: insideCancelledScope },
  ],
  args: [
    { index: 0, name: 'attempt', bad: [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '1', null, undefined] },
    { index: 1, key: 'previousMs', name: 'previousMs', bad: BAD_DURATIONS },
    ...backoffOptionArgs(1),
    signalArg(1),
    clockArg(1),
  ],
  bags: [{ index: 1, fn: 'progressiveDelay' }],
});

audit({
  title: 'parseRetryAfter(value, now)',
  call: (args) => parseRetryAfter(...(args as Parameters<typeof parseRetryAfter>)),
  contexts: [
    { label: 'no header', args: () => [undefined] },
    { label: 'a null header', args: () => [null] },
    { label: 'delta-seconds', args: () => ['120'] },
    { label: 'an IMF-fixdate', args: () => ['Sun, 06 Nov 1994 08:49:37 GMT'] },
    { label: 'an RFC 850 date', args: () => ['Sunday, 06-Nov-94 08:49:37 GMT'] },
    { label: 'garbage', args: () => ['soon'] },
  ],
  args: [
    { index: 0, name: 'value', bad: [120, true, {}, ['120'], 10n] },
    {
      index: 1,
      name: 'now',
      bad: [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 8.64e15 + 1, '0', null, 10n, new Date(0)],
    },
  ],
});

const retryContexts: Context[] = [
  { label: 'no deadline, no signal (no scope opened)', args: () => [ok, {}] },
  { label: 'a timeout', args: () => [ok, { clock, timeout: 100 }] },
  { label: 'an attempt timeout', args: () => [ok, { clock, attemptTimeout: 100 }] },
  { label: 'an aborted signal', args: () => [ok, { clock, signal: aborted() }] },
  { label: 'inside a cancelled scope', args: () => [ok, {}], around: insideCancelledScope },
];
const retryOptionArgs = (index: number): Arg[] => [
  {
    index,
    key: 'maxAttempts',
    name: 'maxAttempts',
    bad: [0, -1, 1.5, Number.NaN, Number.NEGATIVE_INFINITY, '3', null],
  },
  { index, key: 'timeout', name: 'timeout', bad: BAD_DURATIONS },
  { index, key: 'attemptTimeout', name: 'attemptTimeout', bad: BAD_DURATIONS },
  { index, key: 'shouldRetry', name: 'shouldRetry', bad: BAD_FUNCTIONS },
  { index, key: 'shouldRetryResult', name: 'shouldRetryResult', bad: BAD_FUNCTIONS },
  { index, key: 'onRetry', name: 'onRetry', bad: BAD_FUNCTIONS },
  { index, key: 'retryAfter', name: 'retryAfter', bad: BAD_FUNCTIONS },
  { index, key: 'budget', name: 'budget', bad: [{}, 'budget', 5, null, { canRetry: () => true }] },
  {
    index,
    key: 'backoff',
    name: 'backoff',
    names: /backoff/,
    bad: [
      'exponential',
      5,
      null,
      [],
      bad({ initialMs: -1 }, { names: /`initialMs`/, shows: /-1/ }),
      bad({ jitter: 'half' }, { names: /`jitter`/, shows: /"half"/ }),
      bad({ intialMs: 10 }, { names: /`intialMs`/, shows: /intialMs/ }),
    ],
  },
  signalArg(index),
  clockArg(index),
  nameArg(index),
];

audit({
  title: 'retry(fn, options)',
  call: (args) => retry(...(args as Parameters<typeof retry>)),
  contexts: retryContexts,
  args: [{ index: 0, name: 'fn', bad: BAD_REQUIRED_FUNCTIONS }, ...retryOptionArgs(1)],
  bags: [{ index: 1, fn: 'retry' }],
});

audit({
  title: 'new RetryBudget(options)',
  call: (args) => new RetryBudget(...(args as ConstructorParameters<typeof RetryBudget>)),
  contexts: [
    { label: 'the defaults', args: () => [{}] },
    { label: 'both options', args: () => [{ maxTokens: 5, tokenRatio: 0.5 }] },
  ],
  args: [
    {
      index: 0,
      key: 'maxTokens',
      name: 'maxTokens',
      bad: [0, -1, Number.NaN, Number.POSITIVE_INFINITY, '10', bad(null, {})],
    },
    {
      index: 0,
      key: 'tokenRatio',
      name: 'tokenRatio',
      bad: [0, -0.5, Number.NaN, Number.POSITIVE_INFINITY, '0.1', bad(null, {})],
    },
  ],
  bags: [{ index: 0, fn: 'RetryBudget' }],
});

// ---------------------------------------------------------------------------
// Wrapper

const policyArgs = (index: number): Arg[] => [
  { index, key: 'timeout', name: 'timeout', bad: BAD_DURATIONS },
  {
    index,
    key: 'retry',
    name: 'retry',
    bad: [
      true,
      'retry',
      5,
      null,
      bad({ maxAttempts: 0 }, { names: /`maxAttempts`/, shows: /\b0\b/ }),
      bad({ backoff: { factor: 0.5 } }, { names: /`factor`/, shows: /0\.5/ }),
      bad({ tries: 3 }, { names: /`tries`/, shows: /tries/ }),
    ],
  },
  {
    index,
    key: 'concurrency',
    name: 'concurrency',
    bad: [0, -1, 1.5, Number.NaN, Number.NEGATIVE_INFINITY, '2', null, {}],
  },
  { index, key: 'rateLimiter', name: 'rateLimiter', bad: [{}, 'limiter', 5, null, new Semaphore(1)] },
  { index, key: 'breaker', name: 'breaker', bad: [{}, 'breaker', 5, null, new Semaphore(1)] },
  signalArg(index),
  clockArg(index),
  nameArg(index),
];

audit({
  title: 'withSafeAsync(fn, policy)',
  call: (args) => withSafeAsync(...(args as Parameters<typeof withSafeAsync>)),
  contexts: [
    { label: 'an empty policy', args: () => [ok, {}] },
    { label: 'a timeout and retries', args: () => [ok, { clock, timeout: 100, retry: { maxAttempts: 2 } }] },
    { label: 'a shared semaphore', args: () => [ok, { concurrency: new Semaphore(1) }] },
    {
      label: 'a breaker and a rate limiter',
      args: () => [
        ok,
        {
          breaker: new CircuitBreaker({ name: 'b', clock }),
          rateLimiter: new RateLimiter({ ratePerSecond: 1, clock }),
          retry: { maxAttempts: 2, attemptTimeout: 10 },
        },
      ],
    },
  ],
  args: [{ index: 0, name: 'fn', bad: BAD_REQUIRED_FUNCTIONS }, ...policyArgs(1)],
  bags: [{ index: 1, fn: 'withSafeAsync' }],
});

audit({
  title: 'safeAsync(policy) (the decorator factory)',
  call: (args) => safeAsync(...(args as Parameters<typeof safeAsync>)),
  contexts: [
    { label: 'an empty policy', args: () => [{}] },
    { label: 'a timeout and a concurrency', args: () => [{ clock, timeout: 100, concurrency: 2 }] },
  ],
  args: policyArgs(0),
  bags: [{ index: 0, fn: 'safeAsync' }],
});

// ---------------------------------------------------------------------------
// Policies

const BAD_POSITIVE: readonly unknown[] = [
  0,
  -1,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  '10',
  null,
  {},
];

audit({
  title: 'new CircuitBreaker(options)',
  call: (args) => new CircuitBreaker(...(args as ConstructorParameters<typeof CircuitBreaker>)),
  contexts: [
    { label: 'consecutive failures', args: () => [{ name: 'b', clock }] },
    { label: 'a failure rate', args: () => [{ name: 'b', failureRate: 0.5, minimumCalls: 5, windowMs: 1_000, clock }] },
  ],
  args: [
    { index: 0, key: 'name', name: 'name', bad: [undefined, 5, null, {}, ['b']] },
    { index: 0, key: 'failureThreshold', name: 'failureThreshold', bad: BAD_COUNTS },
    {
      index: 0,
      key: 'failureRate',
      name: 'failureRate',
      bad: [0, -0.5, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '0.5', null],
    },
    { index: 0, key: 'minimumCalls', name: 'minimumCalls', bad: BAD_COUNTS },
    { index: 0, key: 'windowMs', name: 'windowMs', bad: BAD_POSITIVE },
    { index: 0, key: 'openMs', name: 'openMs', bad: BAD_DURATIONS },
    { index: 0, key: 'halfOpenMaxCalls', name: 'halfOpenMaxCalls', bad: BAD_COUNTS },
    { index: 0, key: 'shouldCount', name: 'shouldCount', bad: BAD_FUNCTIONS },
    clockArg(0),
  ],
  bags: [{ index: 0, fn: 'CircuitBreaker' }],
});

/** A breaker opened by one failure (its `run` rejects at once). */
function openBreaker(): CircuitBreaker {
  const breaker = new CircuitBreaker({ name: 'open', failureThreshold: 1, clock });
  breaker
    .run(() => {
      throw new Error('down');
    })
    .catch(() => undefined);
  return breaker;
}

audit({
  title: 'CircuitBreaker.run(fn, options)',
  call: ([breaker, ...rest]) => (breaker as CircuitBreaker).run(...(rest as Parameters<CircuitBreaker['run']>)),
  contexts: [
    { label: 'closed', args: () => [new CircuitBreaker({ name: 'b', clock }), ok, {}] },
    { label: 'open', args: () => [openBreaker(), ok, {}] },
    { label: 'an aborted signal', args: () => [new CircuitBreaker({ name: 'b', clock }), ok, { signal: aborted() }] },
    {
      label: 'inside a cancelled scope',
      args: () => [new CircuitBreaker({ name: 'b', clock }), ok, {}],
      around: insideCancelledScope,
    },
  ],
  args: [{ index: 1, name: 'fn', bad: BAD_REQUIRED_FUNCTIONS }, signalArg(2)],
  bags: [{ index: 2, fn: 'run' }],
});

const limiterArgs = (index: number): Arg[] => [
  { index, key: 'ratePerSecond', name: 'ratePerSecond', bad: [undefined, ...BAD_POSITIVE] },
  { index, key: 'burst', name: 'burst', bad: BAD_POSITIVE },
  nameArg(index),
  clockArg(index),
];

audit({
  title: 'new RateLimiter(options)',
  call: (args) => new RateLimiter(...(args as ConstructorParameters<typeof RateLimiter>)),
  contexts: [
    { label: 'a rate', args: () => [{ ratePerSecond: 10 }] },
    { label: 'a rate and a burst', args: () => [{ ratePerSecond: 0.5, burst: 3, clock }] },
  ],
  args: limiterArgs(0),
  bags: [{ index: 0, fn: 'RateLimiter' }],
});

audit({
  title: 'new KeyedRateLimiter(options)',
  call: (args) => new KeyedRateLimiter(...(args as ConstructorParameters<typeof KeyedRateLimiter>)),
  contexts: [{ label: 'a rate and maxKeys', args: () => [{ ratePerSecond: 10, maxKeys: 100 }] }],
  args: [
    ...limiterArgs(0),
    {
      index: 0,
      key: 'maxKeys',
      name: 'maxKeys',
      bad: [undefined, 0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '10', null],
    },
  ],
  bags: [{ index: 0, fn: 'KeyedRateLimiter' }],
});

/** A limiter with no token left (acquire queues, or is refused). */
function drained(): RateLimiter {
  const limiter = new RateLimiter({ ratePerSecond: 1, burst: 2, clock });
  limiter.tryAcquire(2);
  return limiter;
}
const BAD_COSTS: readonly unknown[] = [
  ...BAD_POSITIVE,
  bad(3, { names: /`cost`/, shows: /\b3\b/ }), // above burst: it could never be granted
];
const rateAcquireArgs = (index: number): Arg[] => [
  { index, key: 'cost', name: 'cost', bad: BAD_COSTS },
  { index, key: 'timeout', name: 'timeout', bad: BAD_DURATIONS },
  signalArg(index),
];
const limiterContexts = (keyed: boolean): Context[] => {
  const make = (drain: boolean): unknown => {
    if (!keyed) return drain ? drained() : new RateLimiter({ ratePerSecond: 1, burst: 2, clock });
    const limiter = new KeyedRateLimiter<string>({ ratePerSecond: 1, burst: 2, maxKeys: 10, clock });
    if (drain) limiter.tryAcquire('k', 2);
    return limiter;
  };
  const key = keyed ? ['k'] : [];
  return [
    { label: 'tokens free', args: () => [make(false), ...key, {}] },
    { label: 'no token free (queued)', args: () => [make(true), ...key, {}] },
    { label: 'an aborted signal', args: () => [make(false), ...key, { signal: aborted() }] },
    { label: 'inside a cancelled scope', args: () => [make(false), ...key, {}], around: insideCancelledScope },
  ];
};

audit({
  title: 'RateLimiter.acquire(options)',
  call: ([limiter, ...rest]) => (limiter as RateLimiter).acquire(...(rest as Parameters<RateLimiter['acquire']>)),
  contexts: limiterContexts(false),
  args: rateAcquireArgs(1),
  bags: [{ index: 1, fn: 'acquire' }],
});

audit({
  title: 'RateLimiter.tryAcquire(cost)',
  call: ([limiter, ...rest]) => (limiter as RateLimiter).tryAcquire(...(rest as Parameters<RateLimiter['tryAcquire']>)),
  contexts: [
    { label: 'tokens free', args: () => [new RateLimiter({ ratePerSecond: 1, burst: 2, clock }), 1] },
    { label: 'no token free', args: () => [drained(), 1] },
  ],
  args: [{ index: 1, name: 'cost', bad: BAD_COSTS }],
});

audit({
  title: 'KeyedRateLimiter.acquire(key, options)',
  call: ([limiter, ...rest]) =>
    (limiter as KeyedRateLimiter).acquire(...(rest as Parameters<KeyedRateLimiter['acquire']>)),
  contexts: limiterContexts(true),
  args: rateAcquireArgs(2),
  bags: [{ index: 2, fn: 'acquire' }],
});

audit({
  title: 'KeyedRateLimiter.tryAcquire(key, cost)',
  call: ([limiter, ...rest]) =>
    (limiter as KeyedRateLimiter).tryAcquire(...(rest as Parameters<KeyedRateLimiter['tryAcquire']>)),
  contexts: [
    {
      label: 'a new key',
      args: () => [new KeyedRateLimiter({ ratePerSecond: 1, burst: 2, maxKeys: 1, clock }), 'k', 1],
    },
  ],
  args: [{ index: 2, name: 'cost', bad: BAD_COSTS }],
});

audit({
  title: 'new BrokenCircuitError(message, options)',
  call: (args) => new BrokenCircuitError(...(args as ConstructorParameters<typeof BrokenCircuitError>)),
  contexts: [
    { label: 'no message', args: () => [undefined, {}] },
    { label: 'a message', args: () => ['open', { breakerName: 'billing', retryAfterMs: 100 }] },
  ],
  args: [
    { index: 0, name: 'message', bad: [5, {}, null] },
    { index: 1, key: 'breakerName', name: 'breakerName', bad: [5, null, {}] },
    { index: 1, key: 'retryAfterMs', name: 'retryAfterMs', bad: [-1, Number.NaN, '100', null] },
  ],
  bags: [{ index: 1, fn: 'BrokenCircuitError' }],
});

audit({
  title: 'new RateLimitError(message, options)',
  call: (args) => new RateLimitError(...(args as ConstructorParameters<typeof RateLimitError>)),
  contexts: [
    { label: 'no message', args: () => [undefined, {}] },
    { label: 'a message', args: () => ['slow down', { limiterName: 'api', retryAfterMs: 100 }] },
  ],
  args: [
    { index: 0, name: 'message', bad: [5, {}, null] },
    { index: 1, key: 'limiterName', name: 'limiterName', bad: [5, null, {}] },
    { index: 1, key: 'retryAfterMs', name: 'retryAfterMs', bad: [-1, Number.NaN, '100', null] },
  ],
  bags: [{ index: 1, fn: 'RateLimitError' }],
});

// ---------------------------------------------------------------------------
// Event loop

audit({
  title: 'monitorEventLoop(options)',
  call: (args) => monitorEventLoop(...(args as Parameters<typeof monitorEventLoop>)),
  contexts: [
    { label: 'a manual clock', args: () => [{ clock }] },
    { label: 'thresholds and a callback', args: () => [{ clock, thresholds: { lagMs: 100 }, onSample: ok }] },
  ],
  args: [
    {
      index: 0,
      key: 'intervalMs',
      name: 'intervalMs',
      bad: [0, 0.5, -1, Number.NaN, Number.POSITIVE_INFINITY, '10', null],
    },
    {
      index: 0,
      key: 'resolutionMs',
      name: 'resolutionMs',
      bad: [0, 1.5, -1, Number.NaN, Number.POSITIVE_INFINITY, '10', null],
    },
    {
      index: 0,
      key: 'thresholds',
      name: 'thresholds',
      names: /thresholds/,
      bad: [
        'high',
        5,
        null,
        [],
        bad({ lag: 100 }, { names: /`lag`/, shows: /lag/ }),
        bad({ lagMs: -1 }, { names: /`thresholds\.lagMs`/, shows: /-1/ }),
        bad({ lagMs: Number.NaN }, { names: /`thresholds\.lagMs`/, shows: /NaN/ }),
        bad({ lagMs: '100' }, { names: /`thresholds\.lagMs`/, shows: /"100"/ }),
        bad({ utilization: 1.5 }, { names: /`thresholds\.utilization`/, shows: /1\.5/ }),
        bad({ utilization: -0.1 }, { names: /`thresholds\.utilization`/, shows: /-0\.1/ }),
        bad({ utilization: null }, { names: /`thresholds\.utilization`/, shows: /null/ }),
      ],
    },
    { index: 0, key: 'onSample', name: 'onSample', bad: BAD_FUNCTIONS },
    clockArg(0),
  ],
  bags: [{ index: 0, fn: 'monitorEventLoop' }],
});

// ---------------------------------------------------------------------------
// loopsafe/otel

audit({
  title: 'instrument(options) (loopsafe/otel)',
  call: (args) => instrument(...(args as Parameters<typeof instrument>)),
  contexts: [
    { label: 'no providers (the global ones)', args: () => [{}] },
    {
      label: 'given providers and a monitor',
      args: () => [
        {
          tracerProvider: trace.getTracerProvider(),
          meterProvider: metrics.getMeterProvider(),
          monitor: { snapshot: () => quiet },
        },
      ],
    },
  ],
  args: [
    { index: 0, key: 'tracerProvider', name: 'tracerProvider', bad: [5, 'provider', {}, null, () => undefined] },
    { index: 0, key: 'meterProvider', name: 'meterProvider', bad: [5, 'provider', {}, null, [], () => undefined] },
    { index: 0, key: 'monitor', name: 'monitor', bad: [5, 'monitor', {}, null, { snapshot: 1 }] },
  ],
  bags: [{ index: 0, fn: 'instrument' }],
});

describe('instrument(options) (loopsafe/otel), after its bad input', () => {
  it('left nothing subscribed', () => {
    expect(diagnosticsChannel.tracingChannel('loopsafe:scope').hasSubscribers).toBe(false);
    expect(diagnosticsChannel.hasSubscribers('loopsafe:retry')).toBe(false);
  });
});

audit({
  title: 'cooperativeForEach(items, fn, options)',
  call: (args) => cooperativeForEach(...(args as Parameters<typeof cooperativeForEach>)),
  contexts: [
    { label: 'an array', args: () => [[1, 2], ok, { clock }] },
    { label: 'no item', args: () => [[], ok, { clock }] },
    { label: 'an async iterable', args: () => [(async function* () {})(), ok, { clock }] },
    { label: 'an aborted signal', args: () => [[1], ok, { clock, signal: aborted() }] },
    { label: 'inside a cancelled scope', args: () => [[1], ok, {}], around: insideCancelledScope },
  ],
  args: [
    { index: 0, name: 'items', bad: [5, null, undefined, {}, true] },
    { index: 1, name: 'fn', bad: BAD_REQUIRED_FUNCTIONS },
    {
      index: 2,
      key: 'budgetMs',
      name: 'budgetMs',
      bad: BAD_DURATIONS.map((value) => (value === null ? bad(value, {}) : value)),
    },
    signalArg(2),
    clockArg(2),
  ],
  bags: [{ index: 2, fn: 'cooperativeForEach' }],
});

const quiet: EventLoopSample = {
  at: 0,
  windowMs: 500,
  p50LagMs: 0,
  p99LagMs: 0,
  maxLagMs: 0,
  utilization: 0,
  samples: 50,
  exceeded: [],
};
audit({
  title: 'new LoadShedder(options)',
  call: (args) => new LoadShedder(...(args as ConstructorParameters<typeof LoadShedder>)),
  contexts: [
    { label: 'a monitor given', args: () => [{ monitor: { snapshot: () => quiet } }] },
    { label: 'thresholds given', args: () => [{ monitor: { snapshot: () => quiet }, maxLagMs: 0, maxUtilization: 1 }] },
  ],
  args: [
    { index: 0, key: 'monitor', name: 'monitor', bad: [{}, null, 'monitor', 5, { snapshot: 5 }] },
    { index: 0, key: 'maxLagMs', name: 'maxLagMs', bad: BAD_DURATIONS },
    { index: 0, key: 'maxUtilization', name: 'maxUtilization', bad: [-0.1, 1.5, Number.NaN, '0.9', null] },
    {
      index: 0,
      key: 'maxRetryAfterSeconds',
      name: 'maxRetryAfterSeconds',
      bad: [0, 0.5, 2.5, -1, Number.NaN, Number.NEGATIVE_INFINITY, 2 ** 31, '30', null],
    },
  ],
  bags: [{ index: 0, fn: 'LoadShedder' }],
});

audit({
  title: 'watchStalls(options)',
  call: (args) => watchStalls(...(args as Parameters<typeof watchStalls>)),
  contexts: [
    { label: 'a manual clock', args: () => [{ clock }] },
    { label: 'a callback', args: () => [{ clock, onStall: ok, graceMs: 0 }] },
  ],
  args: [
    { index: 0, key: 'graceMs', name: 'graceMs', bad: BAD_DURATIONS },
    { index: 0, key: 'noDeadlineMs', name: 'noDeadlineMs', bad: BAD_DURATIONS },
    {
      index: 0,
      key: 'intervalMs',
      name: 'intervalMs',
      bad: [0, 0.5, -1, Number.NaN, Number.POSITIVE_INFINITY, '10', null],
    },
    { index: 0, key: 'onStall', name: 'onStall', bad: BAD_FUNCTIONS },
    clockArg(0),
  ],
  bags: [{ index: 0, fn: 'watchStalls' }],
});

// ---------------------------------------------------------------------------
// Errors

audit({
  title: 'new TimeoutError(message, options)',
  call: (args) => new TimeoutError(...(args as ConstructorParameters<typeof TimeoutError>)),
  contexts: [
    { label: 'no message', args: () => [undefined, {}] },
    { label: 'a message', args: () => ['too slow', { scopeName: 'fetch', timeoutMs: 100 }] },
  ],
  args: [
    {
      index: 0,
      name: 'message',
      bad: [5, {}, null],
    },
    {
      index: 1,
      key: 'scopeName',
      name: 'scopeName',
      bad: [5, null, {}],
    },
    {
      index: 1,
      key: 'timeoutMs',
      name: 'timeoutMs',
      bad: [-1, Number.NaN, '100', null],
    },
  ],
  bags: [{ index: 1, fn: 'TimeoutError' }],
});

audit({
  title: 'new GatherError(errors, message)',
  call: (args) => new GatherError(...(args as ConstructorParameters<typeof GatherError>)),
  contexts: [{ label: 'one error', args: () => [[new Error('boom')]] }],
  args: [
    {
      index: 0,
      name: 'errors',
      bad: [null, undefined, 5, 'abc', {}, []],
    },
    {
      index: 1,
      name: 'message',
      bad: [5, {}, null],
    },
  ],
});

// ---------------------------------------------------------------------------
// Clock and testing

audit({
  title: 'systemClock.setTimeout(callback, delayMs)',
  call: (args) => {
    const handle = systemClock.setTimeout(...(args as Parameters<typeof systemClock.setTimeout>));
    systemClock.clearTimeout(handle);
    return undefined;
  },
  contexts: [{ label: 'a 10 ms timer', args: () => [ok, 10] }],
  // Node's own validation: `The "callback" argument must be of type function. Received …`.
  args: [{ index: 0, name: 'callback', names: /callback/, bad: ['callback', 5, null] }],
});

audit({
  title: 'createManualClock(options)',
  call: (args) => createManualClock(...(args as Parameters<typeof createManualClock>)),
  contexts: [
    { label: 'the defaults', args: () => [{}] },
    { label: 'both options', args: () => [{ start: 1_000, maxTimers: 10 }] },
  ],
  args: [
    {
      index: 0,
      key: 'start',
      name: 'start',
      bad: [Number.NaN, Number.POSITIVE_INFINITY, '0', 10n, bad(null, {})],
    },
    {
      index: 0,
      key: 'maxTimers',
      name: 'maxTimers',
      bad: [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '10', bad(null, {})],
    },
  ],
  bags: [{ index: 0, fn: 'createManualClock' }],
});

audit({
  title: 'ManualClock.advance(ms)',
  call: ([target, ...rest]) => (target as ReturnType<typeof createManualClock>).advance(...(rest as [number])),
  contexts: [
    { label: 'a clock with no timer', args: () => [createManualClock(), 10] },
    {
      label: 'a clock with a timer',
      args: () => {
        const withTimer = createManualClock();
        withTimer.setTimeout(ok, 5);
        return [withTimer, 10];
      },
    },
  ],
  args: [{ index: 1, name: 'ms', bad: [...BAD_DURATIONS, Number.POSITIVE_INFINITY, undefined] }],
});

audit({
  title: 'ManualClock.setTimeout(callback, delayMs)',
  call: ([target, ...rest]) =>
    (target as ReturnType<typeof createManualClock>).setTimeout(...(rest as [() => void, number])),
  contexts: [{ label: 'a fresh clock', args: () => [createManualClock(), ok, 10] }],
  // Its delay mirrors Node's by contract (anything outside [1, 2^31−1] fires after 1 ms): no row for it.
  args: [{ index: 1, name: 'callback', bad: ['callback', 5, null, undefined] }],
});

audit({
  title: 'abortListenerCount(signal)',
  call: (args) => abortListenerCount(...(args as Parameters<typeof abortListenerCount>)),
  contexts: [{ label: 'a call', args: () => [new AbortController().signal] }],
  args: [
    {
      index: 0,
      name: 'signal',
      bad: ['signal', null, undefined, 5],
    },
    {
      index: 0,
      name: 'signal',
      bad: [{}, new EventTarget()],
    },
  ],
});

audit({
  title: 'assertNoLeaks(check)',
  call: (args) => {
    assertNoLeaks(...(args as Parameters<typeof assertNoLeaks>));
    return undefined;
  },
  contexts: [
    { label: 'nothing to check', args: () => [{}] },
    {
      label: 'a clean clock and signal',
      args: () => [{ clock: createManualClock(), signals: [new AbortController().signal] }],
    },
  ],
  args: [
    {
      index: 0,
      name: 'check',
      bad: [undefined, null, 'clock', 5],
    },
    {
      index: 0,
      key: 'signals',
      name: 'signals',
      bad: ['signal', 5, {}, [{}], [null]],
    },
    {
      index: 0,
      key: 'clock',
      name: 'clock',
      bad: [{}, 'clock', 5, null],
    },
    {
      index: 0,
      key: 'timersBefore',
      name: 'timersBefore',
      bad: [Number.NaN, -1, 1.5, '0', null],
    },
  ],
  bags: [{ index: 0, fn: 'assertNoLeaks' }],
});

// ---------------------------------------------------------------------------
// Functions with nothing to reject

describe('functions whose arguments accept any value', () => {
  it('isTimeoutError, isAbortError, isBrokenCircuitError and isRateLimitError answer false for garbage and never throw', () => {
    const garbage: unknown[] = [undefined, null, 5, 'TimeoutError', {}, [], Symbol('x'), 10n, () => undefined];
    const throwing = new Proxy(
      {},
      {
        get: () => {
          throw new Error('trap');
        },
      },
    );
    for (const value of [...garbage, throwing]) {
      expect(isTimeoutError(value)).toBe(false);
      expect(isAbortError(value)).toBe(false);
      expect(isBrokenCircuitError(value)).toBe(false);
      expect(isRateLimitError(value)).toBe(false);
    }
  });
});
