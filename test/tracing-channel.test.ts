import { AsyncLocalStorage } from 'node:async_hooks';
import diagnosticsChannel from 'node:diagnostics_channel';
import { afterEach, describe, expect, it } from 'vitest';
import {
  channelNames,
  currentScope,
  GatherError,
  retry,
  safeGather,
  safeGatherSettled,
  safeSleep,
  safeWaitFor,
  Semaphore,
  TimeoutError,
  withDeadline,
  withSafeAsync,
  withTimeout,
  type Scope,
  type ScopeTraceContext,
} from '../src/index.js';
import { activeTimerCount, createManualClock } from '../src/testing.js';
import { flush, never, observe } from './fixtures/observe.js';

const scopes = diagnosticsChannel.tracingChannel<unknown, ScopeTraceContext>(channelNames.scope);
const EVENTS = ['start', 'end', 'asyncStart', 'asyncEnd', 'error'] as const;
type Event = (typeof EVENTS)[number];

/** Records every event of `loopsafe:scope` as `event name [outcome]`, plus anything the test logs. */
function recordScopes(): { readonly log: string[]; readonly contexts: ScopeTraceContext[]; stop(): void } {
  const log: string[] = [];
  const contexts: ScopeTraceContext[] = [];
  const handler = (event: Event) => (context: ScopeTraceContext) => {
    if (event === 'start') contexts.push(context);
    const outcome = event === 'start' || event === 'end' ? '' : ` ${String(context.outcome)}`;
    log.push(`${event} ${context.name}${outcome}`);
  };
  const handlers = {
    start: handler('start'),
    end: handler('end'),
    asyncStart: handler('asyncStart'),
    asyncEnd: handler('asyncEnd'),
    error: handler('error'),
  };
  scopes.subscribe(handlers);
  return {
    log,
    contexts,
    stop: () => {
      scopes.unsubscribe(handlers);
    },
  };
}

/** A handler for each of the five events, doing nothing: to override some of them. */
function noHandlers(): Record<Event, (context: ScopeTraceContext) => void> {
  const none = (): void => undefined;
  return { start: none, end: none, asyncStart: none, asyncEnd: none, error: none };
}

let recorder: ReturnType<typeof recordScopes> | undefined;
function record(): ReturnType<typeof recordScopes> {
  recorder = recordScopes();
  return recorder;
}

afterEach(() => {
  recorder?.stop();
  recorder = undefined;
  // Nothing left subscribed: the next test starts from a channel nobody listens on.
  expect(scopes.hasSubscribers).toBe(false);
});

describe('loopsafe:scope is a TracingChannel', () => {
  it('is named by channelNames.scope, its five channels tracing:loopsafe:scope:*', () => {
    expect(channelNames.scope).toBe('loopsafe:scope');
    for (const event of EVENTS) {
      expect(diagnosticsChannel.channel(`tracing:loopsafe:scope:${event}`)).toBe(scopes[event]);
    }
  });

  it('nobody listens by default: no subscriber on any of the five channels', () => {
    expect(scopes.hasSubscribers).toBe(false);
    for (const event of EVENTS) expect(scopes[event].hasSubscribers).toBe(false);
  });

  it('a sync fn: start before it runs, end after it returned, then asyncStart and asyncEnd', async () => {
    const { log, contexts } = record();
    const result = withTimeout(
      100,
      () => {
        log.push('fn');
        return 42;
      },
      { name: 'sync' },
    );
    log.push('returned');
    await expect(result).resolves.toBe(42);
    expect(log).toEqual(['start sync', 'fn', 'end sync', 'returned', 'asyncStart sync ok', 'asyncEnd sync ok']);
    expect(contexts[0]).toMatchObject({ name: 'sync', named: true, timeoutMs: 100, outcome: 'ok', result: 42 });
    expect(contexts[0]?.error).toBeUndefined();
  });

  it('an async fn: end once its synchronous part is done, asyncStart/asyncEnd when it settles', async () => {
    const clock = createManualClock();
    const { log } = record();
    const run = observe(
      withTimeout(
        100,
        async () => {
          log.push('before await');
          await safeSleep(10);
          log.push('after await');
          return 'done';
        },
        { name: 'async', clock },
      ),
    );
    expect(log).toEqual(['start async', 'before await', 'end async']);
    await clock.advance(10);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'done' });
    expect(log).toEqual([
      'start async',
      'before await',
      'end async',
      'after await',
      'asyncStart async ok',
      'asyncEnd async ok',
    ]);
  });

  it('a sync throw: start, end, error, asyncStart, asyncEnd (the scope rejects, as an async fn would)', async () => {
    const { log, contexts } = record();
    const failure = new Error('boom');
    await expect(
      withTimeout(
        100,
        () => {
          throw failure;
        },
        { name: 'throws' },
      ),
    ).rejects.toBe(failure);
    expect(log).toEqual([
      'start throws',
      'end throws',
      'error throws error',
      'asyncStart throws error',
      'asyncEnd throws error',
    ]);
    expect(contexts[0]?.error).toBe(failure);
  });

  it('a timeout: the trace ends at the deadline, while the function never settles', async () => {
    const clock = createManualClock();
    const { log, contexts } = record();
    const run = observe(withTimeout(50, () => never(), { name: 'hung', clock }));
    await clock.advance(49);
    expect(log).toEqual(['start hung', 'end hung']);
    await clock.advance(1);
    expect(run.outcome.status).toBe('rejected');
    expect(log).toEqual([
      'start hung',
      'end hung',
      'error hung timeout',
      'asyncStart hung timeout',
      'asyncEnd hung timeout',
    ]);
    const context = contexts[0];
    expect(context?.error).toBeInstanceOf(TimeoutError);
    expect(context?.error).toBe((run.outcome as { reason: unknown }).reason);
  });

  it("a cancellation: outcome 'cancelled', the error the caller's abort reason itself", async () => {
    const clock = createManualClock();
    const { log, contexts } = record();
    const controller = new AbortController();
    const reason = new Error('client went away');
    const run = observe(withTimeout(1_000, () => never(), { name: 'request', signal: controller.signal, clock }));
    controller.abort(reason);
    await flush();
    expect(run.outcome).toEqual({ status: 'rejected', reason });
    expect(log.slice(2)).toEqual([
      'error request cancelled',
      'asyncStart request cancelled',
      'asyncEnd request cancelled',
    ]);
    expect(contexts[0]?.error).toBe(reason);
  });

  it("an enclosing deadline ends the inner scope too: both 'timeout', innermost first", async () => {
    const clock = createManualClock();
    const { log } = record();
    const run = observe(
      withTimeout(50, () => withTimeout(1_000, () => never(), { name: 'inner' }), { name: 'outer', clock }),
    );
    await clock.advance(50);
    expect(run.outcome.status).toBe('rejected');
    expect(log).toEqual([
      'start outer',
      'start inner',
      'end inner',
      'end outer',
      'error inner timeout',
      'asyncStart inner timeout',
      'asyncEnd inner timeout',
      'error outer timeout',
      'asyncStart outer timeout',
      'asyncEnd outer timeout',
    ]);
  });

  it('a scope opened past its deadline: traced, its function not called', async () => {
    const clock = createManualClock();
    const { log } = record();
    let called = false;
    await expect(
      withDeadline(
        clock.now() - 1,
        () => {
          called = true;
        },
        { name: 'late', clock },
      ),
    ).rejects.toBeInstanceOf(TimeoutError);
    expect(called).toBe(false);
    expect(log).toEqual([
      'start late',
      'end late',
      'error late timeout',
      'asyncStart late timeout',
      'asyncEnd late timeout',
    ]);
  });

  it('withDeadline: timeoutMs and deadline in the context', async () => {
    const clock = createManualClock({ start: 1_000 });
    const { contexts } = record();
    await withDeadline(1_250, () => 'ok', { name: 'until', clock });
    expect(contexts[0]).toMatchObject({ name: 'until', timeoutMs: 250, deadline: 1_250, outcome: 'ok' });
  });

  it('the deadline is the effective one: an enclosing, earlier deadline', async () => {
    const clock = createManualClock();
    const { contexts } = record();
    await withTimeout(100, () => withTimeout(5_000, () => 'ok', { name: 'inner' }), { name: 'outer', clock });
    const inner = contexts.find((context) => context.name === 'inner');
    expect(inner).toMatchObject({ timeoutMs: 5_000, deadline: 100 });
    expect(contexts.find((context) => context.name === 'outer')).toMatchObject({
      timeoutMs: 100,
      deadline: 100,
    });
  });

  it('named: a name option or the function’s own name; a primitive’s default is not', async () => {
    const { contexts } = record();
    await withTimeout(100, () => 1);
    await withTimeout(100, function loadUser() {
      return 1;
    });
    await withTimeout(100, () => 1, { name: 'given' });
    await new Semaphore(1).run(() => 1);
    expect(contexts.map((context) => [context.name, context.named])).toEqual([
      ['withTimeout', false],
      ['loadUser', true],
      ['given', true],
      ['Semaphore.run', false],
    ]);
  });

  it('the context carries the live scope', async () => {
    const { contexts } = record();
    let inside: Scope | undefined;
    await withTimeout(100, () => (inside = currentScope()), { name: 'live' });
    expect(contexts[0]?.scope).toBe(inside);
  });
});

describe('every primitive is traced', () => {
  it('withSafeAsync: one scope per call, named after the function', async () => {
    const { log } = record();
    const getUser = withSafeAsync(
      async function getUser(id: string) {
        await Promise.resolve();
        return id;
      },
      { timeout: 100 },
    );
    await getUser('ada');
    expect(log).toEqual(['start getUser', 'end getUser', 'asyncStart getUser ok', 'asyncEnd getUser ok']);
  });

  it('withSafeAsync with retry: the call is the named scope, its attempts named after it', async () => {
    const { contexts } = record();
    const failure = new Error('once');
    let calls = 0;
    const getUser = withSafeAsync(
      function getUser() {
        calls++;
        if (calls === 1) throw failure;
        return 'ada';
      },
      { timeout: 1_000, retry: { backoff: { initialMs: 0 } } },
    );
    await expect(getUser()).resolves.toBe('ada');
    expect(contexts.map((context) => [context.name, context.named])).toEqual([
      ['getUser', true],
      ['getUser', false],
      ['getUser attempt 1', true],
      ['getUser attempt 2', true],
    ]);
    const anonymous = withSafeAsync(() => 'x', { retry: {} });
    await anonymous();
    expect(contexts.slice(4).map((context) => [context.name, context.named])).toEqual([
      ['withSafeAsync', false],
      ['withSafeAsync', false],
      ['withSafeAsync attempt 1', false],
    ]);
  });

  it('retry: each attempt a child scope of the retry scope, traced inside it', async () => {
    const clock = createManualClock();
    const { log, contexts } = record();
    const failure = new Error('flaky');
    const run = observe(
      retry(
        ({ attempt }) => {
          if (attempt < 2) throw failure;
          return 'ok';
        },
        { name: 'fetch', backoff: { initialMs: 10, jitter: 'none' }, clock },
      ),
    );
    await clock.advance(10);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'ok' });
    expect(log).toEqual([
      'start fetch',
      'start fetch attempt 1',
      'end fetch attempt 1',
      'end fetch',
      'error fetch attempt 1 error',
      'asyncStart fetch attempt 1 error',
      'asyncEnd fetch attempt 1 error',
      'start fetch attempt 2',
      'end fetch attempt 2',
      'asyncStart fetch attempt 2 ok',
      'asyncEnd fetch attempt 2 ok',
      'asyncStart fetch ok',
      'asyncEnd fetch ok',
    ]);
    const [operation, first, second] = contexts;
    expect(first?.scope.parent).toBe(operation?.scope);
    expect(second?.scope.parent).toBe(operation?.scope);
    expect(first?.named).toBe(true);
    expect(contexts).toHaveLength(3);
  });

  it("retry: an attempt's own timeout, then the retry's deadline cutting the last wait short", async () => {
    const clock = createManualClock();
    const { log } = record();
    const run = observe(
      retry(() => never(), {
        name: 'slow',
        attemptTimeout: 20,
        timeout: 30,
        backoff: { initialMs: 5, jitter: 'none' },
        clock,
      }),
    );
    await clock.advance(30);
    expect(run.outcome.status).toBe('rejected');
    expect(log).toEqual([
      'start slow',
      'start slow attempt 1',
      'end slow attempt 1',
      'end slow',
      'error slow attempt 1 timeout',
      'asyncStart slow attempt 1 timeout',
      'asyncEnd slow attempt 1 timeout',
      'start slow attempt 2',
      'end slow attempt 2',
      'error slow attempt 2 timeout',
      'asyncStart slow attempt 2 timeout',
      'asyncEnd slow attempt 2 timeout',
      'error slow timeout',
      'asyncStart slow timeout',
      'asyncEnd slow timeout',
    ]);
  });

  it('retry with nothing to bound it opens its scope only while traced: the same outcome either way', async () => {
    const untraced = await retry(({ attempt }) => attempt, { name: 'plain' });
    const { log } = record();
    const traced = await retry(({ attempt }) => attempt, { name: 'plain' });
    expect(traced).toBe(untraced);
    expect(log).toEqual([
      'start plain',
      'start plain attempt 1',
      'end plain attempt 1',
      'end plain',
      'asyncStart plain attempt 1 ok',
      'asyncEnd plain attempt 1 ok',
      'asyncStart plain ok',
      'asyncEnd plain ok',
    ]);
  });

  it('safeGather: one scope, the tasks run inside it; a failure is its error', async () => {
    const { log, contexts } = record();
    const failure = new Error('one failed');
    await expect(
      safeGather(
        [
          () => {
            log.push('task 0');
            return 1;
          },
          () => Promise.reject(failure),
        ],
        { name: 'fan-out' },
      ),
    ).rejects.toBeInstanceOf(GatherError);
    expect(log).toEqual([
      'start fan-out',
      'task 0',
      'end fan-out',
      'error fan-out error',
      'asyncStart fan-out error',
      'asyncEnd fan-out error',
    ]);
    expect(contexts[0]?.named).toBe(true);
  });

  it("safeGatherSettled at its own timeout resolves with what finished: outcome 'ok'", async () => {
    const clock = createManualClock();
    const { log } = record();
    const run = observe(safeGatherSettled([() => 1, () => never()], { timeout: 50, clock }));
    await clock.advance(50);
    expect(run.outcome.status).toBe('fulfilled');
    expect(log).toEqual([
      'start safeGatherSettled',
      'end safeGatherSettled',
      'asyncStart safeGatherSettled ok',
      'asyncEnd safeGatherSettled ok',
    ]);
  });

  it("safeGather at its own timeout: 'timeout'; aborted from outside: 'cancelled'", async () => {
    const clock = createManualClock();
    const { log } = record();
    const timedOut = observe(safeGather([() => never()], { name: 'slow', timeout: 50, clock }));
    await clock.advance(50);
    expect(timedOut.outcome.status).toBe('rejected');
    const controller = new AbortController();
    const aborted = observe(safeGather([() => never()], { name: 'left', signal: controller.signal, clock }));
    controller.abort(new Error('bye'));
    await flush();
    expect(aborted.outcome.status).toBe('rejected');
    expect(log.filter((line) => line.startsWith('asyncEnd'))).toEqual([
      'asyncEnd slow timeout',
      'asyncEnd left cancelled',
    ]);
  });

  it('safeWaitFor on a function, and Semaphore.run, are scopes too', async () => {
    const { log } = record();
    await safeWaitFor(() => 'x', { timeout: 100, name: 'lookup' });
    await new Semaphore(1).run(() => 'y');
    expect(log.filter((line) => line.startsWith('asyncEnd'))).toEqual([
      'asyncEnd lookup ok',
      'asyncEnd Semaphore.run ok',
    ]);
  });
});

describe('binding a store: how APM tools bind their own context', () => {
  it("a store bound to start is active in the scope's function, across awaits, and nests", async () => {
    const als = new AsyncLocalStorage<string>();
    // Each scope's store names the chain of scopes around it, read from the store active where it opens.
    scopes.start.bindStore(als, (context) => `${als.getStore() ?? ''}/${context.name}`);
    try {
      const clock = createManualClock();
      const seen: (string | undefined)[] = [];
      const run = observe(
        withTimeout(
          100,
          async () => {
            seen.push(als.getStore());
            await safeSleep(5);
            seen.push(als.getStore());
            await withTimeout(
              100,
              async () => {
                await Promise.resolve();
                seen.push(als.getStore());
              },
              { name: 'inner' },
            );
            seen.push(als.getStore());
          },
          { name: 'outer', clock },
        ),
      );
      expect(als.getStore()).toBeUndefined();
      await clock.advance(5);
      expect(run.outcome.status).toBe('fulfilled');
      expect(seen).toEqual(['/outer', '/outer', '/outer/inner', '/outer']);
    } finally {
      scopes.start.unbindStore(als);
    }
    expect(scopes.hasSubscribers).toBe(false);
  });

  it("a gather's tasks and a retry's attempts see their scope's store", async () => {
    const als = new AsyncLocalStorage<string>();
    scopes.start.bindStore(als, (context) => context.name);
    try {
      const seen: (string | undefined)[] = [];
      await safeGather(
        [
          async () => {
            await Promise.resolve();
            seen.push(als.getStore());
          },
          () => seen.push(als.getStore()),
        ],
        { name: 'fan-out', concurrency: 1 },
      );
      await retry(
        ({ attempt }) => {
          seen.push(als.getStore());
          if (attempt === 1) throw new Error('again');
        },
        { name: 'job', backoff: { initialMs: 0 } },
      );
      expect(seen).toEqual(['fan-out', 'fan-out', 'job attempt 1', 'job attempt 2']);
    } finally {
      scopes.start.unbindStore(als);
    }
  });

  it('asyncStart and asyncEnd handlers run with the scope’s store active', async () => {
    const als = new AsyncLocalStorage<string>();
    const seen: (string | undefined)[] = [];
    const handlers = {
      ...noHandlers(),
      asyncEnd: () => {
        seen.push(als.getStore());
      },
    };
    scopes.start.bindStore(als, (context) => context.name);
    scopes.subscribe(handlers);
    try {
      await withTimeout(100, () => 1, { name: 'a' });
      const clock = createManualClock();
      const run = observe(withTimeout(10, () => never(), { name: 'b', clock }));
      await clock.advance(10);
      expect(run.outcome.status).toBe('rejected');
      expect(seen).toEqual(['a', 'b']);
    } finally {
      scopes.unsubscribe(handlers);
      scopes.start.unbindStore(als);
    }
  });
});

describe('tracing changes no outcome and leaves nothing behind', () => {
  it('the same results, errors and timers, traced or not', async () => {
    const clock = createManualClock();
    const scenario = async () => {
      const ok = await withTimeout(100, () => 'v', { clock });
      const failure = new Error('x');
      const failed = await withTimeout(
        100,
        () => {
          throw failure;
        },
        { clock },
      ).catch((error: unknown) => error);
      const run = observe(withTimeout(10, () => never(), { clock }));
      await clock.advance(10);
      return [ok, failed === failure, (run.outcome as { reason: unknown }).reason instanceof TimeoutError];
    };
    const timersBefore = activeTimerCount();
    const untraced = await scenario();
    record();
    const traced = await scenario();
    expect(traced).toEqual(untraced);
    expect(clock.pendingTimers).toBe(0);
    expect(activeTimerCount()).toBe(timersBefore);
  });

  it('a scope traced while a subscriber throws still settles (the throw is reported, not raised here)', async () => {
    const thrown: unknown[] = [];
    const onUncaught = (error: unknown): void => {
      thrown.push(error);
    };
    // Node reports a subscriber's throw as an uncaught exception on the next tick.
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', onUncaught);
    const bad = new Error('subscriber bug');
    const handlers = {
      ...noHandlers(),
      start: () => {
        throw bad;
      },
      asyncEnd: () => {
        throw bad;
      },
    };
    scopes.subscribe(handlers);
    try {
      await expect(withTimeout(100, () => 'still fine', { name: 'x' })).resolves.toBe('still fine');
      await flush();
      expect(thrown).toEqual([bad, bad]);
    } finally {
      scopes.unsubscribe(handlers);
      process.off('uncaughtException', onUncaught);
      for (const listener of listeners) process.on('uncaughtException', listener);
    }
  });
});

describe('traced, an error still keeps its caller’s async frames', () => {
  const HANDLER_FRAME = /at (async )?handler \(/;

  it.each([
    ['a TimeoutError', () => withTimeout(5, () => never(), { name: 't' })],
    [
      "the work's own error",
      () =>
        withTimeout(1_000, async () => {
          await new Promise((resolve) => setTimeout(resolve, 1));
          throw new Error('work failed');
        }),
    ],
    ['a gather’s TimeoutError', () => safeGather([() => never()], { timeout: 5 })],
    ['a retry’s TimeoutError', () => retry(() => never(), { timeout: 5 })],
  ])('%s', async (_label, call: () => Promise<unknown>) => {
    record();
    async function handler(): Promise<unknown> {
      return await call();
    }
    const error = (await handler().then(
      () => undefined,
      (e: unknown) => e,
    )) as Error;
    expect(error).toBeInstanceOf(Error);
    expect(error.stack).toMatch(HANDLER_FRAME);
  });
});
