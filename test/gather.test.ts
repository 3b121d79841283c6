import fc from 'fast-check';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { GatherError, TimeoutError } from '../src/errors.js';
import { safeGather, safeGatherSettled, type GatherTask } from '../src/gather.js';
import { currentScope, pendingScopes, withTimeout } from '../src/scope.js';
import { safeSleep } from '../src/sleep.js';
import { abortListenerCount, createManualClock, type ManualClock } from '../src/testing.js';
import { never, observe, trackUnhandledRejections } from './fixtures/observe.js';

/** Counts what the tasks of a test did. */
function counters(): { started: number; aborted: number; running: number; peak: number } {
  return { started: 0, aborted: 0, running: 0, peak: 0 };
}

/** A cooperative task: sleeps `ms` on the ambient (gather's) clock, then returns `value` or throws `error`. */
function timed<T>(c: ReturnType<typeof counters>, ms: number, value: T, error?: unknown): GatherTask<T> {
  return async (signal) => {
    c.started++;
    c.peak = Math.max(c.peak, ++c.running);
    signal.addEventListener('abort', () => c.aborted++, { once: true });
    try {
      await safeSleep(ms, { signal });
    } finally {
      c.running--;
    }
    if (error !== undefined) throw error;
    return value;
  };
}

function reasonOf(outcome: { readonly status: string; readonly reason?: unknown }): unknown {
  expect(outcome.status).toBe('rejected');
  return outcome.reason;
}

describe('safeGather()', () => {
  it('fulfils with the results in input order under mixed durations', async () => {
    const clock = createManualClock();
    const c = counters();
    const durations = [30, 5, 20, 1, 25, 10];
    const gathering = observe(
      safeGather(
        durations.map((ms, i) => timed(c, ms, `r${String(i)}`)),
        { clock, concurrency: 3, name: 'mixed' },
      ),
    );
    // 0..2 start at 0; 3 at 5 (ends 6); 4 at 6 (ends 31); 5 at 20 (ends 30).
    await clock.advance(30);
    expect(gathering.outcome.status).toBe('pending');
    await clock.advance(1);
    expect(gathering.outcome).toEqual({ status: 'fulfilled', value: ['r0', 'r1', 'r2', 'r3', 'r4', 'r5'] });
    expect(c.peak).toBe(3);
    expect(clock.pendingTimers).toBe(0);
    expect(pendingScopes().filter((s) => s.name.startsWith('mixed'))).toEqual([]);
  });

  it('accepts synchronous tasks and plain values, and types tuples', async () => {
    const results = await safeGather([() => 1, () => 'two', () => Promise.resolve(true)] as const);
    expectTypeOf(results).toEqualTypeOf<[number, string, boolean]>();
    expect(results).toEqual([1, 'two', true]);
  });

  it('resolves [] for an empty iterable', async () => {
    await expect(safeGather([])).resolves.toEqual([]);
    await expect(safeGather(new Set<GatherTask>())).resolves.toEqual([]);
  });

  it('fails fast: the first failure aborts all running siblings at once and rejects within the same ms', async () => {
    const clock = createManualClock();
    const c = counters();
    const failure = new Error('task 10 failed');
    const tasks = Array.from({ length: 10_000 }, (_, i) => (i === 10 ? timed(c, 5, i, failure) : timed(c, 100, i)));
    const gathering = observe(safeGather(tasks, { clock, concurrency: 100, name: 'fail-fast' }));
    await clock.advance(4);
    expect(c.started).toBe(100);
    expect(gathering.outcome.status).toBe('pending');
    await clock.advance(1);
    expect(clock.now()).toBe(5);
    const error = reasonOf(gathering.outcome) as GatherError;
    expect(error).toBeInstanceOf(GatherError);
    expect(error).toBeInstanceOf(AggregateError);
    expect(error.errors).toEqual([failure]);
    expect(error.cause).toBe(failure);
    expect(c.started).toBe(100);
    expect(c.aborted).toBe(99);
    expect(c.running).toBe(0);
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(200);
    expect(c.started).toBe(100);
    expect(pendingScopes().filter((s) => s.name.startsWith('fail-fast'))).toEqual([]);
  });

  it('never reports the cancellations it caused, even when siblings fail with their own error on abort', async () => {
    const clock = createManualClock();
    const failure = new Error('real');
    const sibling: GatherTask = (signal) =>
      new Promise((_, reject) => {
        signal.addEventListener('abort', () => {
          reject(new Error('sibling saw the abort'));
        });
      });
    const syncThrowOnAbort: GatherTask = async (signal) => {
      await safeSleep(Infinity, { signal }).catch(() => undefined);
      throw new Error('cleanup failed after abort');
    };
    const gathering = observe(safeGather([sibling, syncThrowOnAbort, timed(counters(), 3, 0, failure)], { clock }));
    await clock.advance(3);
    await clock.flush();
    const error = reasonOf(gathering.outcome) as GatherError;
    expect(error.errors).toEqual([failure]);
  });

  it('tells tasks why they were cancelled with an AbortError, not the failure itself', async () => {
    const clock = createManualClock();
    let seen: unknown;
    const gathering = observe(
      safeGather(
        [
          (signal) => safeSleep(100, { signal }).catch((reason: unknown) => (seen = reason)),
          () => Promise.reject(new Error('boom')),
        ],
        { clock, name: 'fan-out' },
      ),
    );
    await clock.flush();
    expect(gathering.outcome.status).toBe('rejected');
    expect(seen).toBeInstanceOf(DOMException);
    expect((seen as DOMException).name).toBe('AbortError');
    expect((seen as DOMException).message).toContain('fan-out');
  });

  it('is not held open by a sibling that ignores its signal; its late settlement is absorbed', async () => {
    const tracker = trackUnhandledRejections();
    try {
      const clock = createManualClock();
      let lateReject: (e: unknown) => void = () => undefined;
      const stubborn: GatherTask = () => new Promise((_, reject) => (lateReject = reject));
      const gathering = observe(
        safeGather([stubborn, () => never(), timed(counters(), 2, 0, new Error('x'))], { clock }),
      );
      await clock.advance(2);
      expect((reasonOf(gathering.outcome) as GatherError).errors).toHaveLength(1);
      lateReject(new Error('late failure'));
      await clock.flush();
      await clock.flush();
      expect(tracker.reasons).toEqual([]);
      expect(clock.pendingTimers).toBe(0);
    } finally {
      tracker.stop();
    }
  });

  it('reports a synchronous throw as a failure', async () => {
    const failure = new TypeError('bad input');
    const error = await safeGather([
      () => 1,
      () => {
        throw failure;
      },
    ]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GatherError);
    expect((error as GatherError).cause).toBe(failure);
  });

  it('pulls tasks lazily: a generator of a million tasks holds only `concurrency` in flight', async () => {
    const clock = createManualClock();
    let pulled = 0;
    let closed = false;
    let inFlight = 0;
    let completed = 0;
    let peak = 0;
    function* tasks(): Generator<GatherTask<number>> {
      try {
        for (let i = 0; i < 1_000_000; i++) {
          pulled++;
          yield async () => {
            peak = Math.max(peak, ++inFlight);
            await safeSleep(1 + (i % 7));
            inFlight--;
            completed++;
            return i;
          };
        }
      } finally {
        closed = true;
      }
    }
    const controller = new AbortController();
    const gathering = observe(safeGather(tasks(), { clock, concurrency: 100, signal: controller.signal }));
    expect(pulled).toBe(100);
    for (let step = 0; step < 20; step++) {
      await clock.advance(1);
      // Exactly one task pulled per task finished: never ahead of the window.
      expect(inFlight).toBe(100);
      expect(pulled).toBe(completed + 100);
    }
    expect(peak).toBe(100);
    expect(pulled).toBeGreaterThan(200);
    expect(pulled).toBeLessThan(1_000);
    const reason = new Error('enough');
    controller.abort(reason);
    await clock.flush();
    expect(reasonOf(gathering.outcome)).toBe(reason);
    expect(closed).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });

  it("rejects with the caller's reason (===) and aborts every task", async () => {
    const clock = createManualClock();
    const c = counters();
    const controller = new AbortController();
    const gathering = observe(
      safeGather([timed(c, 50, 1), timed(c, 60, 2), timed(c, 70, 3)], {
        clock,
        signal: controller.signal,
        concurrency: 2,
      }),
    );
    await clock.advance(10);
    const reason = { why: 'client went away' };
    controller.abort(reason);
    expect(c.aborted).toBe(2);
    await clock.flush();
    expect(reasonOf(gathering.outcome)).toBe(reason);
    expect(c.started).toBe(2);
    expect(clock.pendingTimers).toBe(0);
    expect(abortListenerCount(controller.signal)).toBe(0);
  });

  it('rejects at once, starting nothing, when the signal is already aborted', async () => {
    const controller = new AbortController();
    const reason = new Error('already');
    controller.abort(reason);
    let started = 0;
    await expect(safeGather([() => ++started], { signal: controller.signal })).rejects.toBe(reason);
    await expect(safeGather([], { signal: controller.signal })).rejects.toBe(reason);
    expect(started).toBe(0);
  });

  it('rejects with its own TimeoutError at the timeout and aborts every task', async () => {
    const clock = createManualClock();
    const c = counters();
    const gathering = observe(
      safeGather([timed(c, 5, 1), timed(c, 500, 2), () => never()], { clock, timeout: 100, name: 'upstreams' }),
    );
    await clock.advance(99);
    expect(gathering.outcome.status).toBe('pending');
    await clock.advance(1);
    const error = reasonOf(gathering.outcome) as TimeoutError;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error.scopeName).toBe('upstreams');
    expect(error.timeoutMs).toBe(100);
    expect(c.aborted).toBe(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it('runs its tasks inside the gather’s scope, so the ambient deadline reaches inside', async () => {
    const clock = createManualClock();
    const names: string[] = [];
    const outer = observe(
      withTimeout(
        30,
        () =>
          safeGather(
            [
              async () => {
                const scope = currentScope();
                names.push(scope?.name ?? '', scope?.parent?.name ?? '', scope?.parent?.parent?.name ?? '');
                await safeSleep(Infinity);
              },
            ],
            { name: 'lookups' },
          ),
        { clock, name: 'request' },
      ),
    );
    await clock.advance(30);
    expect(names).toEqual(['lookups', 'request', '']);
    const error = reasonOf(outer.outcome) as TimeoutError;
    expect(error.scopeName).toBe('request');
    expect(clock.pendingTimers).toBe(0);
  });

  it('lists a task that ignores its signal after the gather stopped as `name[i]`, until it settles', async () => {
    const clock = createManualClock();
    let finish: () => void = () => undefined;
    const ignoring = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const run = observe(
      safeGather([() => safeSleep(5), () => ignoring, () => Promise.reject(new Error('boom'))], {
        name: 'fan-out',
        clock,
      }),
    );
    await clock.flush();
    expect(reasonOf(run.outcome)).toBeInstanceOf(GatherError);
    await clock.flush(); // the tasks that settle on their signal do so within microtasks: the rest are listed from the next turn
    // A task that is running normally is not listed; one still running once cancelled is.
    const listed = () => pendingScopes().filter((s) => s.name.startsWith('fan-out'));
    expect(listed().map((s) => [s.name, s.overdue, s.parent])).toEqual([['fan-out[1]', true, 'fan-out']]);
    finish();
    await clock.flush();
    expect(listed()).toEqual([]);
  });

  it('leaves no listener on a long-lived caller signal: one while running, 0 after', async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    const signal = controller.signal;
    for (let round = 0; round < 200; round++) {
      const gathering = safeGather(
        Array.from({ length: 50 }, (_, i) => (s: AbortSignal) => safeSleep(1 + (i % 3), { signal: s })),
        {
          clock,
          signal,
          concurrency: 10,
        },
      );
      expect(abortListenerCount(signal)).toBe(1);
      await clock.runAll();
      await gathering;
    }
    await safeGather([() => Promise.reject(new Error('x'))], { signal }).catch(() => undefined);
    const settled = observe(safeGatherSettled([() => never()], { signal, timeout: 1, clock }));
    expect(abortListenerCount(signal)).toBe(1);
    await clock.advance(1);
    expect(settled.outcome.status).toBe('fulfilled');
    expect(abortListenerCount(signal)).toBe(0);
  });

  it('rejects with a TypeError when a lazily pulled task is not a function, aborting the running ones', async () => {
    const clock = createManualClock();
    const c = counters();
    function* tasks(): Generator {
      yield timed(c, 10, 1);
      yield 'not a task';
    }
    const error = await safeGather(tasks() as Iterable<GatherTask>, { clock }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as TypeError).message).toContain('tasks[1]');
    expect(c.aborted).toBe(1);
  });

  it('rejects with the error of an iterable that throws, aborting the running ones', async () => {
    const clock = createManualClock();
    const c = counters();
    const broken = new Error('iterator broke');
    function* tasks(): Generator<GatherTask> {
      yield timed(c, 10, 1);
      throw broken;
    }
    await expect(safeGather(tasks(), { clock })).rejects.toBe(broken);
    expect(c.aborted).toBe(1);
  });

  describe('bad input throws synchronously', () => {
    it.each([0, -1, 1.5, Number.NaN, Number.NEGATIVE_INFINITY])('concurrency %s → RangeError', (concurrency) => {
      expect(() => safeGather([], { concurrency })).toThrow(RangeError);
      expect(() => safeGatherSettled([], { concurrency })).toThrow(/concurrency/);
    });

    it('rejects a non-number concurrency, timeout, unknown options and non-iterables', () => {
      expect(() => safeGather([], { concurrency: '2' as unknown as number })).toThrow(TypeError);
      expect(() => safeGather([], { timeout: -1 })).toThrow(RangeError);
      expect(() => safeGather([], { retries: 1 } as never)).toThrow(/Unknown option `retries`/);
      expect(() => safeGather(42 as never)).toThrow(/Expected `tasks` to be an iterable of functions, got 42/);
      expect(() => safeGather(null as never)).toThrow(TypeError);
    });

    it('reports a non-function in an array before starting anything', () => {
      let started = 0;
      const tasks = [() => ++started, () => ++started, 'oops'] as unknown as GatherTask[];
      expect(() => safeGather(tasks)).toThrow(/Expected `tasks\[2\]` to be a function \(signal\) => value, got "oops"/);
      expect(started).toBe(0);
    });
  });
});

describe('safeGatherSettled()', () => {
  it('never rejects for task failures and keeps input order', async () => {
    const clock = createManualClock();
    const failure = new Error('nope');
    const gathering = observe(
      safeGatherSettled([timed(counters(), 9, 'a'), timed(counters(), 1, 'b', failure), () => 'c'], {
        clock,
        concurrency: 2,
      }),
    );
    await clock.advance(9);
    expect(gathering.outcome).toEqual({
      status: 'fulfilled',
      value: [
        { status: 'fulfilled', value: 'a' },
        { status: 'rejected', reason: failure },
        { status: 'fulfilled', value: 'c' },
      ],
    });
  });

  it('resolves at its timeout with what finished; the rest are rejected with the TimeoutError and aborted', async () => {
    const clock = createManualClock();
    const c = counters();
    const failure = new Error('stock down');
    const tasks = [
      timed(c, 5, 'prices'),
      timed(c, 500, 'reviews'),
      timed(c, 2, 'x', failure),
      () => never(),
      timed(c, 1, 'queued'),
    ];
    const gathering = observe(safeGatherSettled(tasks, { clock, timeout: 20, concurrency: 4, name: 'page' }));
    await clock.advance(19);
    expect(gathering.outcome.status).toBe('pending');
    await clock.advance(1);
    expect(gathering.outcome.status).toBe('fulfilled');
    const results = (gathering.outcome as { value: PromiseSettledResult<unknown>[] }).value;
    expect(results.slice(0, 3).map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected']);
    expect(results[0]).toEqual({ status: 'fulfilled', value: 'prices' });
    expect(results[2]).toEqual({ status: 'rejected', reason: failure });
    const timeout = (results[1] as PromiseRejectedResult).reason as TimeoutError;
    expect(timeout).toBeInstanceOf(TimeoutError);
    expect(timeout.scopeName).toBe('page');
    expect(results).toHaveLength(5);
    // The never-settling task and the one still running both get the TimeoutError; so does one started late.
    expect(results.slice(1).filter((r) => r.status === 'rejected' && r.reason === timeout)).toHaveLength(2);
    expect(results[4]).toEqual({ status: 'fulfilled', value: 'queued' });
    expect(c.aborted).toBe(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it('marks tasks of an array that never started as timed out too', async () => {
    const clock = createManualClock();
    const c = counters();
    const gathering = observe(
      safeGatherSettled([timed(c, 50, 1), timed(c, 50, 2), timed(c, 50, 3)], { clock, timeout: 10, concurrency: 1 }),
    );
    await clock.advance(10);
    const results = (gathering.outcome as { value: PromiseSettledResult<unknown>[] }).value;
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(c.started).toBe(1);
  });

  it("still rejects with the caller's reason (===)", async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    const gathering = observe(
      safeGatherSettled([timed(counters(), 50, 1)], { clock, signal: controller.signal, timeout: 100 }),
    );
    const reason = new Error('shutdown');
    controller.abort(reason);
    await clock.flush();
    expect(reasonOf(gathering.outcome)).toBe(reason);
  });
});

describe('invariants over random task timings (property-based, manual clock)', () => {
  const taskSpec = fc.record({ ms: fc.integer({ min: 0, max: 50 }), fails: fc.boolean() });

  async function runGather(
    clock: ManualClock,
    specs: { ms: number; fails: boolean }[],
    concurrency: number,
    settled: boolean,
  ) {
    const c = counters();
    const failures = specs.map((s, i) => (s.fails ? new Error(`f${String(i)}`) : undefined));
    const tasks = specs.map((s, i) => timed(c, s.ms, i, failures[i]));
    const gathering = observe<unknown>(
      settled ? safeGatherSettled(tasks, { clock, concurrency }) : safeGather(tasks, { clock, concurrency }),
    );
    await clock.runAll();
    await clock.flush();
    return { c, failures, outcome: gathering.outcome };
  }

  it('results are in input order and concurrency never exceeds the limit', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(taskSpec, { maxLength: 40 }),
        fc.integer({ min: 1, max: 8 }),
        async (specs, concurrency) => {
          const clock = createManualClock();
          const { c, outcome } = await runGather(clock, specs, concurrency, true);
          expect(c.peak).toBeLessThanOrEqual(concurrency);
          expect(c.started).toBe(specs.length);
          const results = (outcome as { value: PromiseSettledResult<unknown>[] }).value;
          results.forEach((r, i) => {
            if (specs[i]?.fails === true) expect(r.status).toBe('rejected');
            else expect(r).toEqual({ status: 'fulfilled', value: i });
          });
          expect(clock.pendingTimers).toBe(0);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('fail-fast reports exactly the earliest failure and leaves nothing running', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(taskSpec, { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 8 }),
        async (specs, concurrency) => {
          const clock = createManualClock();
          const { c, failures, outcome } = await runGather(clock, specs, concurrency, false);
          expect(c.peak).toBeLessThanOrEqual(concurrency);
          expect(c.running).toBe(0);
          expect(clock.pendingTimers).toBe(0);
          if (!specs.some((s) => s.fails)) {
            expect(outcome).toEqual({ status: 'fulfilled', value: specs.map((_, i) => i) });
            return;
          }
          const error = reasonOf(outcome) as GatherError;
          expect(error.errors).toHaveLength(1);
          expect(failures).toContain(error.cause);
          expect(c.aborted).toBeLessThanOrEqual(concurrency - 1);
        },
      ),
      { numRuns: 60 },
    );
  });
});
