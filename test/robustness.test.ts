/**
 * Classes of fault, each tested across every primitive it can reach: what a
 * task may reject with, how deep scopes may nest, what a synchronous function
 * may do, where a returned thenable runs, which timeouts are published, and
 * which async frames an error keeps.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  channelNames,
  cooperativeForEach,
  currentScope,
  GatherError,
  hedge,
  isTimeoutError,
  retry,
  safeGather,
  safeGatherSettled,
  safeRace,
  safeSleep,
  safeWaitFor,
  Semaphore,
  singleFlight,
  TimeoutError,
  timeoutContext,
  withDeadline,
  withSafeAsync,
  withTimeout,
  type Clock,
  type Scope,
  type TimeoutMessage,
} from '../src/index.js';
import { createManualClock, type ManualClock } from '../src/testing.js';
import { flush, never, observe, realDelay, trackUnhandledRejections } from './fixtures/observe.js';
import { recordChannels } from './fixtures/channels.js';

let rejections: ReturnType<typeof trackUnhandledRejections>;
beforeEach(() => {
  rejections = trackUnhandledRejections();
});
afterEach(async () => {
  await flush();
  rejections.stop();
  expect(rejections.reasons).toEqual([]);
});

const reasonOf = (outcome: { status: string }): unknown => (outcome as { reason?: unknown }).reason;

// ── what a task may fail with ──────────────────────────────────────────

/** Values a task may reject or throw with that a careless library would choke on. */
function evilValues(): [string, unknown][] {
  const throwing = (key: string) =>
    Object.defineProperty({}, key, {
      get() {
        throw new Error(`${key} getter`);
      },
    });
  const revoked = Proxy.revocable({}, {});
  revoked.revoke();
  const trapsThrow = new Proxy(
    {},
    {
      get() {
        throw new Error('get trap');
      },
      getPrototypeOf() {
        throw new Error('getPrototypeOf trap');
      },
      has() {
        throw new Error('has trap');
      },
    },
  );
  return [
    ['an object with no prototype', Object.create(null)],
    ['a throwing `message` getter', throwing('message')],
    ['a throwing `name` getter', throwing('name')],
    ['a throwing `cause` getter', throwing('cause')],
    ['a revoked Proxy', revoked.proxy],
    ['a Proxy whose traps throw', trapsThrow],
    ['a symbol', Symbol('evil')],
    ['a bigint', 10n],
    ['undefined', undefined],
    ['null', null],
  ];
}

/** Each primitive, given a task that fails with `value` (asynchronously, or synchronously). */
function failingRuns(value: unknown, sync: boolean, clock: ManualClock): Record<string, () => Promise<unknown>> {
  const fail = (): Promise<never> => {
    if (sync) throw value;
    return Promise.reject(value);
  };
  return {
    withTimeout: () => withTimeout(1_000, fail, { clock }),
    withDeadline: () => withDeadline(clock.now() + 1_000, fail, { clock }),
    'safeWaitFor(fn)': () => safeWaitFor(fail, { timeout: 1_000, clock }),
    'safeWaitFor(promise)': () => safeWaitFor(Promise.reject(value), { timeout: 1_000, clock }),
    'safeGather (with a hanging sibling)': () => safeGather([fail, () => never()], { clock }),
    retry: () => retry(fail, { maxAttempts: 2, backoff: () => 0, clock }),
    'retry { timeout }': () => retry(fail, { maxAttempts: 2, backoff: () => 0, timeout: 1_000, clock }),
    withSafeAsync: () => withSafeAsync(fail, { timeout: 1_000, retry: { maxAttempts: 2, backoff: () => 0 }, clock })(),
    'withSafeAsync { concurrency }': () => withSafeAsync(fail, { timeout: 1_000, concurrency: 1, clock })(),
    'Semaphore.run': () => new Semaphore(1).run(fail),
    cooperativeForEach: () => cooperativeForEach([1], fail, { clock }),
    'safeRace (every task failing)': () => safeRace([fail, fail], { clock }),
    'hedge (every attempt failing)': () => hedge(fail, { delayMs: 5, maxAttempts: 2, clock }),
    'singleFlight (two callers)': () => {
      const load = singleFlight(fail);
      const other = load('k');
      other.catch(() => undefined);
      return load('k');
    },
  };
}

describe('whatever a task fails with, every primitive settles on time and raises no unhandledRejection', () => {
  for (const [label, value] of evilValues()) {
    for (const sync of [false, true]) {
      it(`${label}, ${sync ? 'thrown' : 'rejected'}`, async () => {
        const clock = createManualClock();
        const runs = failingRuns(value, sync, clock);
        const outcomes = Object.entries(runs).map(([name, run]) => [name, observe(run())] as const);
        await clock.advance(10); // retries wait 0 ms on the manual clock: a 1 ms timer
        await clock.advance(10);
        for (const [name, run] of outcomes) {
          expect([name, run.outcome.status]).toEqual([name, 'rejected']);
          const reason = reasonOf(run.outcome);
          if (name.startsWith('safeGather') || name.startsWith('safeRace') || name.startsWith('hedge')) {
            expect(reason).toBeInstanceOf(GatherError);
            expect((reason as GatherError).errors[0] === value).toBe(true);
            expect((reason as GatherError).errors.every((error) => error === value)).toBe(true);
            expect(typeof (reason as GatherError).message).toBe('string');
          } else {
            expect([name, reason === value]).toEqual([name, true]);
          }
        }
        const settled = observe(safeGatherSettled([() => Promise.reject(value), () => 'ok'], { clock }));
        await clock.flush();
        // Compared by identity: deep equality would itself trip over a revoked Proxy.
        const results = (settled.outcome as { value?: PromiseSettledResult<unknown>[] }).value;
        expect(results?.map((r) => r.status)).toEqual(['rejected', 'fulfilled']);
        expect((results?.[0] as PromiseRejectedResult).reason === value).toBe(true);
        expect(clock.pendingTimers).toBe(0);
      });
    }
  }
});

// ── depth ──────────────────────────────────────────────────────────────

describe('scopes nested thousands deep cancel and expire without recursion', () => {
  it('withSafeAsync calling itself 5,000 deep, then the outer signal aborts', async () => {
    const controller = new AbortController();
    let deepest = 0;
    const descend: (depth: number) => Promise<number> = withSafeAsync(
      async (depth: number): Promise<number> => {
        await Promise.resolve(); // each call goes deeper from a new microtask, as real work does
        deepest = Math.max(deepest, depth);
        if (depth === 5_000) return never();
        return descend(depth + 1);
      },
      { name: 'descend' },
    );
    const run = observe(withTimeout(Number.POSITIVE_INFINITY, () => descend(1), { signal: controller.signal }));
    for (let i = 0; i < 100 && deepest < 5_000; i++) await flush();
    expect(deepest).toBe(5_000);
    controller.abort('shutdown');
    await flush();
    expect(run.outcome).toEqual({ status: 'rejected', reason: 'shutdown' });
  });

  /** A chain that cycles through every scope-opening primitive, `depth` deep, opened after an await each. */
  function mixedChain(depth: number, clock: Clock, signal: AbortSignal) {
    let innermost: Scope | undefined;
    const level = async (left: number): Promise<unknown> => {
      await Promise.resolve();
      if (left === 0) {
        innermost = currentScope();
        return never();
      }
      const next = () => level(left - 1);
      switch (left % 8) {
        case 6:
          return safeRace([next]);
        case 7:
          return hedge(next, { delayMs: Number.POSITIVE_INFINITY });
        case 0:
          return withTimeout(60_000, next);
        case 1:
          return safeWaitFor(next, 60_000);
        case 2:
          return retry(next, { maxAttempts: 1 });
        case 3:
          return safeGather([next]);
        case 4:
          return withSafeAsync(next, { timeout: 60_000 })();
        default:
          return new Semaphore(1).run(next);
      }
    };
    const run = observe(withTimeout(1_000, () => level(depth), { clock, signal, name: 'top' }));
    return { run, innermost: () => innermost };
  }

  it('a 20,000-deep chain of every primitive, cancelled from outside', async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    const chain = mixedChain(20_000, clock, controller.signal);
    while (chain.innermost() === undefined) await clock.flush();
    controller.abort('stop');
    await clock.flush();
    expect(chain.run.outcome).toEqual({ status: 'rejected', reason: 'stop' });
    expect(chain.innermost()?.signal.reason).toBe('stop');
    expect(clock.pendingTimers).toBe(0);
  }, 20_000);

  it('a 20,000-deep chain of every primitive, expiring at the outer deadline', async () => {
    const clock = createManualClock();
    const chain = mixedChain(20_000, clock, new AbortController().signal);
    while (chain.innermost() === undefined) await clock.flush();
    expect(clock.pendingTimers).toBe(1); // every inner deadline comes later: only the outer one is armed
    await clock.advance(1_000);
    expect((reasonOf(chain.run.outcome) as TimeoutError).scopeName).toBe('top');
    expect(isTimeoutError(chain.innermost()?.signal.reason)).toBe(true);
  }, 20_000);
});

// ── synchronous functions ──────────────────────────────────────────────

describe('a synchronous function and an async one are the same to every primitive', () => {
  /** Each scope-opening primitive running `fn`. */
  const runs = (clock: ManualClock): Record<string, (fn: () => unknown) => Promise<unknown>> => ({
    withTimeout: (fn) => withTimeout(1_000, fn, { clock }),
    withDeadline: (fn) => withDeadline(clock.now() + 1_000, fn, { clock }),
    'safeWaitFor(fn)': (fn) => safeWaitFor(fn, { timeout: 1_000, clock }),
    retry: (fn) => retry(fn, { clock, timeout: 1_000 }),
    withSafeAsync: (fn) => withSafeAsync(fn, { clock, timeout: 1_000 })(),
    'Semaphore.run': (fn) => withTimeout(1_000, () => new Semaphore(1).run(fn), { clock }),
    safeGather: (fn) => safeGather([fn], { clock, timeout: 1_000 }).then(([value]) => value),
  });

  it.each(['sync', 'async'] as const)(
    'a scope cancelled during a %s function rejects with the reason',
    async (kind) => {
      const clock = createManualClock();
      for (const [name, run] of Object.entries(runs(clock))) {
        const body = () => {
          currentScope()?.cancel('R');
          return 'v';
        };
        // The async one cancels in its synchronous part, before returning its promise.
        const outcome = observe(run(kind === 'sync' ? body : () => Promise.resolve(body())));
        await clock.flush();
        expect([name, outcome.outcome]).toEqual([name, { status: 'rejected', reason: 'R' }]);
      }
    },
  );

  it('a lazy thenable returned by the function is adopted inside the scope, and bounded by it', async () => {
    const clock = createManualClock();
    for (const [name, run] of Object.entries(runs(clock))) {
      const seen: (Scope | undefined)[] = [];
      let sleeping: { outcome: { status: string } } | undefined;
      const lazy = {
        then(resolve: (value: unknown) => void, reject: (reason: unknown) => void) {
          seen.push(currentScope());
          // The work starts only now, in `then`: it must be inside the scope, and stopped with it.
          const work = safeSleep(Infinity);
          sleeping = observe(work);
          work.then(resolve, reject);
        },
      };
      const outcome = observe(run(() => lazy));
      await clock.advance(1_000);
      expect([name, seen.length, seen[0] !== undefined]).toEqual([name, 1, true]);
      expect([name, outcome.outcome.status, sleeping?.outcome.status]).toEqual([name, 'rejected', 'rejected']);
      expect(clock.pendingTimers).toBe(0);
    }
  });

  it('safeGather sees failures in the order they happen: a synchronous throw stops it before later tasks start', async () => {
    const started: number[] = [];
    const boom = new Error('boom');
    const run = observe(
      safeGather([
        () => {
          started.push(0);
          return new Promise(() => undefined);
        },
        () => {
          started.push(1);
          throw boom;
        },
        () => {
          started.push(2);
          return 'never started';
        },
      ]),
    );
    await flush();
    expect(started).toEqual([0, 1]);
    expect((reasonOf(run.outcome) as GatherError).errors).toEqual([boom]);
  });

  it('safeGather: a synchronous throw after a synchronous value is the failure, and nothing starts after it', async () => {
    const started: number[] = [];
    const boom = new Error('boom');
    const tasks = [1, 2, 3, 4].map((i) => () => {
      started.push(i);
      if (i === 2) throw boom;
      return i;
    });
    const run = observe(safeGather(tasks, { concurrency: 1 }));
    await flush();
    expect(started).toEqual([1, 2]);
    expect((reasonOf(run.outcome) as GatherError).cause).toBe(boom);
  });
});

// ── published timeouts ─────────────────────────────────────────────────

describe('every timeout is published on loopsafe:timeout, with the error its caller receives', () => {
  const cases = (clock: ManualClock): Record<string, () => Promise<unknown>> => ({
    withTimeout: () => withTimeout(100, () => never(), { clock }),
    withDeadline: () => withDeadline(100, () => never(), { clock }),
    'safeWaitFor(promise)': () => safeWaitFor(never(), { timeout: 100, clock }),
    'safeWaitFor(fn)': () => safeWaitFor(() => never(), { timeout: 100, clock }),
    safeGather: () => safeGather([() => never()], { timeout: 100, clock }),
    'retry { timeout }, attempts failed': () =>
      retry(() => Promise.reject(new Error('down')), { timeout: 100, maxAttempts: Infinity, backoff: () => 30, clock }),
    'retry { timeout }, first attempt hung': () => retry(() => never(), { timeout: 100, clock }),
    'withSafeAsync { timeout, retry }': () =>
      withSafeAsync(() => Promise.reject(new Error('down')), {
        timeout: 100,
        retry: { maxAttempts: Infinity, backoff: () => 30 },
        clock,
      })(),
    'Semaphore.acquire { timeout }': () => {
      const semaphore = new Semaphore(1);
      semaphore.tryAcquire();
      return semaphore.acquire({ timeout: 100, clock });
    },
    'Semaphore.acquire { timeout } of a named bulkhead': () => {
      const semaphore = new Semaphore(1, { name: 'pool', maxQueue: 5 });
      semaphore.tryAcquire();
      return semaphore.acquire({ timeout: 100, clock });
    },
    'safeRace { timeout }': () => safeRace([() => never(), () => never()], { timeout: 100, clock }),
    'hedge { timeout }': () => hedge(() => never(), { delayMs: 30, maxAttempts: 3, timeout: 100, clock }),
    'cooperativeForEach in a scope': () =>
      withTimeout(100, () => cooperativeForEach([1, 2], () => safeSleep(60, { clock })), { clock }),
  });

  it.each(Object.keys(cases(createManualClock())))('%s', async (name) => {
    const clock = createManualClock();
    using recorder = recordChannels([channelNames.timeout]);
    const published = (): TimeoutMessage[] => recorder.messages<TimeoutMessage>(channelNames.timeout);
    const run = observe((cases(clock)[name] as () => Promise<unknown>)());
    await clock.advance(100);
    const received = reasonOf(run.outcome);
    expect(received).toBeInstanceOf(TimeoutError);
    expect(published()).toHaveLength(1);
    expect(published()[0]?.error).toBe(received);
    expect(published()[0]?.scopeName).toBe((received as TimeoutError).scopeName);
  });

  it('retry’s attemptTimeout publishes each attempt’s own TimeoutError', async () => {
    const clock = createManualClock();
    using recorder = recordChannels([channelNames.timeout]);
    const published = (): TimeoutMessage[] => recorder.messages<TimeoutMessage>(channelNames.timeout);
    const run = observe(retry(() => never(), { attemptTimeout: 10, maxAttempts: 2, backoff: () => 0, clock }));
    await clock.advance(10);
    await clock.advance(20);
    expect(published().map((m) => m.scopeName)).toEqual(['retry attempt 1', 'retry attempt 2']);
    expect(reasonOf(run.outcome)).toBe(published()[1]?.error);
  });

  it('a timeoutContext’s expiry is published', async () => {
    const clock = createManualClock();
    using recorder = recordChannels([channelNames.timeout]);
    const published = (): TimeoutMessage[] => recorder.messages<TimeoutMessage>(channelNames.timeout);
    using ctx = timeoutContext(100, { clock, name: 'report' });
    await clock.advance(100);
    expect(published().map((m) => [m.scopeName, m.error === ctx.signal.reason])).toEqual([['report', true]]);
  });
});

// ── async frames ───────────────────────────────────────────────────────

/**
 * The caller's frame, as V8 prints it (`at async handler`) or as vitest's
 * source-mapped stacks do (`at handler`): either way, a stack that lost its
 * async frames has no `handler` in it at all.
 */
const HANDLER_FRAME = /at (async )?handler \(/;
const WORK_FRAME = /at (async )?(\S+\.)?work \(/;

describe('an error keeps its caller’s async frames through every primitive, as a plain await does', () => {
  async function work(): Promise<never> {
    await realDelay(1);
    throw new Error('work failed');
  }

  const through: Record<string, () => Promise<unknown>> = {
    'plain await': () => work(),
    withTimeout: () => withTimeout(1_000, work),
    withDeadline: () => withDeadline(performance.now() + 1_000, work),
    'safeWaitFor(promise)': () => safeWaitFor(work(), 1_000),
    'safeWaitFor(fn)': () => safeWaitFor(work, 1_000),
    retry: () => retry(work, { maxAttempts: 1 }),
    'retry, after retries': () => retry(work, { maxAttempts: 3, backoff: () => 0, timeout: 1_000 }),
    'retry { attemptTimeout }': () => retry(work, { maxAttempts: 2, backoff: () => 0, attemptTimeout: 1_000 }),
    withSafeAsync: () => withSafeAsync(work, { timeout: 1_000 })(),
    'withSafeAsync { concurrency, retry }': () =>
      withSafeAsync(work, { timeout: 1_000, concurrency: 2, retry: { maxAttempts: 2, backoff: () => 0 } })(),
    'Semaphore.run': () => new Semaphore(1).run(work),
    cooperativeForEach: () => cooperativeForEach([1], work),
    'singleFlight(fn)(key)': () => singleFlight(work)('key'),
    'singleFlight(fn)(key, { signal })': () => singleFlight(work)('key', { signal: new AbortController().signal }),
  };

  it.each(Object.keys(through))('%s', async (name) => {
    async function handler(): Promise<unknown> {
      return await (through[name] as () => Promise<unknown>)();
    }
    const error = (await handler().then(
      () => undefined,
      (e: unknown) => e,
    )) as Error;
    expect(error.message).toBe('work failed');
    expect(error.stack).toMatch(WORK_FRAME);
    expect(error.stack).toMatch(HANDLER_FRAME);
  });

  const aggregating: Record<string, () => Promise<unknown>> = {
    safeGather: () => safeGather([work]),
    safeRace: () => safeRace([work, work]),
    hedge: () => hedge(work, { delayMs: 0, maxAttempts: 2 }),
  };

  it.each(Object.keys(aggregating))(
    '%s: its GatherError carries the caller’s frames; its cause keeps the task’s',
    async (name) => {
      async function handler(): Promise<unknown> {
        return await (aggregating[name] as () => Promise<unknown>)();
      }
      const error = (await handler().then(
        () => undefined,
        (e: unknown) => e,
      )) as GatherError;
      expect(error).toBeInstanceOf(GatherError);
      expect(error.stack).toMatch(HANDLER_FRAME);
      expect((error.cause as Error).stack).toMatch(WORK_FRAME);
    },
  );

  const timingOut: Record<string, () => Promise<unknown>> = {
    withTimeout: () => withTimeout(5, () => never()),
    'safeWaitFor(promise)': () => safeWaitFor(never(), 5),
    'safeWaitFor(fn)': () => safeWaitFor(() => never(), 5),
    'retry { timeout }': () => retry(() => never(), { timeout: 5 }),
    safeGather: () => safeGather([() => never()], { timeout: 5 }),
    safeSleep: () => withTimeout(5, () => safeSleep(1_000)),
    safeRace: () => safeRace([() => never(), () => never()], { timeout: 5 }),
    hedge: () => hedge(() => never(), { delayMs: 1, timeout: 5 }),
    'singleFlight(fn)(key) in a scope': () => withTimeout(5, () => singleFlight(() => never())('key')),
    'Semaphore.acquire': () => {
      const semaphore = new Semaphore(1);
      semaphore.tryAcquire();
      return semaphore.acquire({ timeout: 5 });
    },
  };

  it.each(Object.keys(timingOut))('%s: its TimeoutError points at the caller', async (name) => {
    async function handler(): Promise<unknown> {
      return await (timingOut[name] as () => Promise<unknown>)();
    }
    const error = (await handler().then(
      () => undefined,
      (e: unknown) => e,
    )) as TimeoutError;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error.stack).toMatch(HANDLER_FRAME);
  });
});
