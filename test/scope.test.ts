import { describe, expect, it, vi } from 'vitest';
import { TimeoutError } from '../src/errors.js';
import {
  captureScopeStacks,
  currentScope,
  currentSignal,
  pendingScopes,
  timeoutContext,
  withDeadline,
  withTimeout,
  type Scope,
} from '../src/scope.js';
import { safeSleep } from '../src/sleep.js';
import { abortListenerCount, createManualClock } from '../src/testing.js';
import { never, observe } from './fixtures/observe.js';

const reasonOf = (tracker: { outcome: { status: string } }): unknown =>
  (tracker.outcome as { reason?: unknown }).reason;

describe('withTimeout()', () => {
  it('resolves with fn’s value and leaves no timer', async () => {
    const clock = createManualClock();
    await expect(withTimeout(100, () => Promise.resolve('ok'), { clock })).resolves.toBe('ok');
    await expect(withTimeout(100, () => 'sync', { clock })).resolves.toBe('sync');
    expect(clock.pendingTimers).toBe(0);
    expect(pendingScopes().filter((s) => s.scope.clock === clock)).toEqual([]);
  });

  it('rejects at the deadline without waiting for fn, aborting the scope signal with the same error', async () => {
    const clock = createManualClock();
    let scope: Scope | undefined;
    const run = observe(
      withTimeout(
        100,
        (s) => {
          scope = s;
          return never();
        },
        { clock, name: 'slow-call' },
      ),
    );
    await clock.advance(100);
    const reason = reasonOf(run) as TimeoutError;
    expect(reason).toBeInstanceOf(TimeoutError);
    expect(reason.scopeName).toBe('slow-call');
    expect(reason.timeoutMs).toBe(100);
    expect(scope?.signal.reason).toBe(reason);
    expect(scope?.expired).toBe(true);
    expect(scope?.remaining()).toBe(0);
  });

  it('passes fn’s own rejection through (===)', async () => {
    const error = new Error('boom');
    await expect(withTimeout(100, () => Promise.reject(error))).rejects.toBe(error);
    await expect(
      withTimeout(100, () => {
        throw error;
      }),
    ).rejects.toBe(error);
  });

  it('does not call fn when the deadline has already passed', async () => {
    const clock = createManualClock();
    const fn = vi.fn();
    await expect(withTimeout(0, fn, { clock })).rejects.toBeInstanceOf(TimeoutError);
    await expect(withDeadline(clock.now() - 5, fn, { clock })).rejects.toBeInstanceOf(TimeoutError);
    expect(fn).not.toHaveBeenCalled();
    expect(clock.pendingTimers).toBe(0);
  });

  it.each([{}, 'text', 0, false])(
    'an already-aborted signal with reason %s rejects with it and never calls fn',
    async (reason) => {
      const controller = new AbortController();
      controller.abort(reason);
      const fn = vi.fn();
      const outcome = await withTimeout(100, fn, { signal: controller.signal }).then(
        () => 'fulfilled',
        (error: unknown) => error,
      );
      expect(outcome).toBe(reason);
      expect(fn).not.toHaveBeenCalled();
    },
  );

  it('an already-aborted signal with no reason rejects with the platform AbortError', async () => {
    const controller = new AbortController();
    controller.abort();
    const error = await withTimeout(100, () => 1, { signal: controller.signal }).catch((e: unknown) => e);
    expect(error).toBe(controller.signal.reason);
    expect((error as Error).name).toBe('AbortError');
  });

  it('the caller’s abort reason passes through untouched, and the listener is removed first', async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    const reason = Symbol('shutdown');
    let inner: AbortSignal | undefined;
    const run = observe(
      withTimeout(
        1_000,
        (s) => {
          inner = s.signal;
          return never();
        },
        { clock, signal: controller.signal },
      ),
    );
    expect(abortListenerCount(controller.signal)).toBe(1);
    controller.abort(reason);
    expect(abortListenerCount(controller.signal)).toBe(0);
    expect(clock.pendingTimers).toBe(0);
    await clock.flush();
    expect(reasonOf(run)).toBe(reason);
    expect(inner?.reason).toBe(reason);
  });

  it('disposing a function-owned scope early cannot switch its deadline off', async () => {
    const clock = createManualClock();
    const run = observe(
      withTimeout(
        20,
        (scope) => {
          scope[Symbol.dispose]();
          return never();
        },
        { clock },
      ),
    );
    await clock.advance(20);
    expect(reasonOf(run)).toBeInstanceOf(TimeoutError);
  });

  it('scope.cancel(reason) rejects with that reason; without one, an AbortError', async () => {
    const a = observe(withTimeout(100, (s) => (s.cancel('stop'), never())));
    const b = observe(withTimeout(100, (s) => (s.cancel(), never())));
    await safeSleep(0);
    expect(reasonOf(a)).toBe('stop');
    expect((reasonOf(b) as DOMException).name).toBe('AbortError');
  });
});

describe('nested scopes', () => {
  it('an inner scope never outlives the outer one, and the error names the outer scope', async () => {
    const clock = createManualClock();
    let inner: Scope | undefined;
    const run = observe(
      withTimeout(
        100,
        () =>
          withTimeout(
            5_000,
            (s) => {
              inner = s;
              return never();
            },
            { name: 'inner' },
          ),
        { clock, name: 'outer' },
      ),
    );
    expect(inner?.deadline).toBe(100);
    expect(inner?.remaining()).toBe(100);
    expect(clock.pendingTimers).toBe(1); // the inner scope needs no timer of its own
    await clock.advance(100);
    const reason = reasonOf(run) as TimeoutError;
    expect(reason.scopeName).toBe('outer');
    expect(inner?.signal.reason).toBe(reason);
    expect(clock.pendingTimers).toBe(0);
  });

  it('an inner scope with the earlier deadline names itself', async () => {
    const clock = createManualClock();
    const run = observe(
      withTimeout(1_000, () => withTimeout(10, () => never(), { name: 'inner' }), { clock, name: 'outer' }),
    );
    await clock.advance(10);
    expect((reasonOf(run) as TimeoutError).scopeName).toBe('inner');
  });

  it('the outer expiry rejects inner work with the outer error', async () => {
    const clock = createManualClock();
    const seen: unknown[] = [];
    const run = observe(
      withTimeout(
        50,
        async () => {
          await Promise.all([
            safeSleep(1_000).catch((e: unknown) => seen.push(e)),
            withTimeout(500, () => never()).catch((e: unknown) => seen.push(e)),
          ]);
          return never();
        },
        { clock, name: 'request' },
      ),
    );
    await clock.advance(50);
    expect(seen).toHaveLength(2);
    expect(seen[0]).toBe(reasonOf(run));
    expect(seen[1]).toBe(reasonOf(run));
  });

  it('cancelling the outer scope cancels everything inside with the same reason', async () => {
    const clock = createManualClock();
    let innerSignal: AbortSignal | undefined;
    const run = observe(
      withTimeout(
        Infinity,
        async (outer) => {
          const inner = withTimeout(Infinity, (s) => {
            innerSignal = s.signal;
            return never();
          });
          outer.cancel('user pressed stop');
          return inner;
        },
        { clock },
      ),
    );
    await clock.flush();
    expect(reasonOf(run)).toBe('user pressed stop');
    expect(innerSignal?.reason).toBe('user pressed stop');
  });

  it('work left running inside a finished scope stays bounded by its deadline', async () => {
    const clock = createManualClock();
    let floating: { outcome: { status: string } } | undefined;
    await withTimeout(
      100,
      () => {
        floating = observe(safeSleep(10_000));
        return 'returned early';
      },
      { clock, name: 'handler' },
    );
    expect(clock.pendingTimers).toBe(1); // the scope's deadline stays armed for the floating sleep
    await clock.advance(100);
    expect((reasonOf(floating ?? { outcome: { status: 'x' } }) as TimeoutError).scopeName).toBe('handler');
    expect(clock.pendingTimers).toBe(0);
  });

  it('a callback that runs after its scope finished re-attaches it, still bounded by the deadline', async () => {
    const clock = createManualClock();
    let floating: { outcome: { status: string } } | undefined;
    await withTimeout(
      100,
      () => {
        // Scheduled inside the scope: the callback runs in its async context, after it has returned.
        clock.setTimeout(() => {
          floating = observe(safeSleep(10_000));
        }, 10);
        return 'done';
      },
      { clock, name: 'handler' },
    );
    expect(clock.pendingTimers).toBe(1); // only the callback: the finished scope released its deadline timer
    await clock.advance(10);
    expect(floating?.outcome.status).toBe('pending');
    expect(clock.pendingTimers).toBe(1); // the scope's deadline, re-armed for the sleep (which needs none of its own)
    await clock.advance(90);
    expect((reasonOf(floating ?? { outcome: { status: 'missing' } }) as TimeoutError).scopeName).toBe('handler');
    expect(clock.pendingTimers).toBe(0);
  });

  it('the clock of the outer scope is inherited by everything inside', async () => {
    const clock = createManualClock();
    const run = observe(
      withTimeout(Infinity, () => withTimeout(40, () => safeSleep(30).then(() => currentScope()?.clock)), { clock }),
    );
    await clock.advance(30);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: clock });
  });
});

describe('cooperative checks', () => {
  it('check() inside a synchronous loop that starves timers throws at the deadline', async () => {
    let iterations = 0;
    const started = performance.now();
    const error = await withTimeout(20, (scope) => {
      for (;;) {
        iterations++;
        scope.check(); // no timer can fire while this loop runs
      }
    }).catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(iterations).toBeGreaterThan(1);
    expect(elapsed).toBeGreaterThanOrEqual(19);
    expect(elapsed).toBeLessThan(1_000);
  });

  it('check() expires the scope that owns the deadline, and names it', async () => {
    // A clock whose time moves while no timer fires: the CPU-bound loop's view of the world.
    let now = 0;
    const timers = createManualClock();
    const clock = {
      now: () => now,
      setTimeout: (callback: () => void, ms: number) => timers.setTimeout(callback, ms),
      clearTimeout: (handle: unknown) => {
        timers.clearTimeout(handle);
      },
    };
    let innerScope: Scope | undefined;
    const run = observe(
      withTimeout(
        10,
        () =>
          withTimeout(
            1_000,
            (inner) => {
              innerScope = inner;
              return never();
            },
            { name: 'inner' },
          ),
        { clock, name: 'outer' },
      ),
    );
    now = 10; // the deadline has passed; no timer has run
    expect(innerScope?.expired).toBe(true);
    expect(innerScope?.signal.aborted).toBe(false);
    let thrown: unknown;
    try {
      innerScope?.check();
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(TimeoutError);
    expect((thrown as TimeoutError).scopeName).toBe('outer');
    expect((thrown as Error).stack).toContain('scope.test.ts');
    expect(innerScope?.signal.reason).toBe(thrown);
    expect(timers.pendingTimers).toBe(0); // expiring cleared the outer timer
    await timers.flush();
    expect(reasonOf(run)).toBe(thrown);
  });

  it('expired reads the clock; check() passes before the deadline', async () => {
    const clock = createManualClock();
    await withTimeout(
      10,
      async (scope) => {
        expect(scope.expired).toBe(false);
        scope.check();
        await clock.advance(5);
        expect(scope.remaining()).toBe(5);
      },
      { clock },
    );
  });
});

describe('ambient scope', () => {
  it('is absent outside any scope', () => {
    expect(currentScope()).toBeUndefined();
    expect(currentSignal()).toBeUndefined();
  });

  it('survives await, timers, setImmediate, queueMicrotask and custom thenables', async () => {
    const seen: Record<string, Scope | undefined> = {};
    let expected: Scope | undefined;
    await withTimeout(1_000, async (scope) => {
      expected = scope;
      await Promise.resolve();
      seen.await = currentScope();
      await new Promise<void>((resolve) =>
        setTimeout(() => {
          seen.setTimeout = currentScope();
          resolve();
        }, 1),
      );
      await new Promise<void>((resolve) =>
        setImmediate(() => {
          seen.setImmediate = currentScope();
          resolve();
        }),
      );
      await new Promise<void>((resolve) => {
        queueMicrotask(() => {
          seen.queueMicrotask = currentScope();
          resolve();
        });
      });
      const thenable = {
        then(onFulfilled: (value: Scope | undefined) => void) {
          onFulfilled(currentScope());
        },
      };
      seen.thenableCallback = await thenable;
      seen.afterThenable = currentScope();
    });
    expect(expected).toBeDefined();
    for (const [where, scope] of Object.entries(seen))
      expect({ where, same: scope === expected }).toEqual({ where, same: true });
    expect(Object.keys(seen)).toHaveLength(6);
    expect(currentScope()).toBeUndefined();
  });

  it('currentSignal() is the ambient scope’s signal', async () => {
    await withTimeout(100, (scope) => {
      expect(currentSignal()).toBe(scope.signal);
    });
  });

  it('concurrent scopes do not see each other', async () => {
    const names = await Promise.all(
      ['a', 'b', 'c'].map((name) =>
        withTimeout(
          100,
          async () => {
            await safeSleep(1);
            return currentScope()?.name;
          },
          { name },
        ),
      ),
    );
    expect(names).toEqual(['a', 'b', 'c']);
  });
});

describe('withDeadline()', () => {
  it('takes a time on the scope’s clock', async () => {
    const clock = createManualClock({ start: 1_000 });
    const run = observe(withDeadline(1_250, () => never(), { clock, name: 'until-1250' }));
    await clock.advance(249);
    expect(run.outcome.status).toBe('pending');
    await clock.advance(1);
    expect((reasonOf(run) as TimeoutError).timeoutMs).toBe(250);
  });

  it('converts a Date once, on entry', async () => {
    const clock = createManualClock();
    const run = observe(withDeadline(new Date(Date.now() + 300), (s) => s.remaining(), { clock }));
    await clock.flush();
    const remaining = (run.outcome as { value: number }).value;
    expect(remaining).toBeGreaterThan(290);
    expect(remaining).toBeLessThanOrEqual(300);
  });

  it('rejects bad deadlines synchronously', () => {
    expect(() => withDeadline(Number.NaN, () => 1)).toThrow(RangeError);
    expect(() => withDeadline(new Date('nope'), () => 1)).toThrow(/Invalid Date/);
    expect(() => withDeadline('tomorrow' as never, () => 1)).toThrow(/`deadline`.*"tomorrow"/);
  });
});

describe('timeoutContext()', () => {
  it('is a disposable child of the ambient scope that expires on its own', async () => {
    const clock = createManualClock();
    let ctxSignal: AbortSignal | undefined;
    await withTimeout(
      1_000,
      async () => {
        using ctx = timeoutContext(50, { name: 'report' });
        expect(ctx.deadline).toBe(50);
        expect(currentScope()?.name).not.toBe('report'); // not ambient
        ctxSignal = ctx.signal;
        await clock.advance(50);
        expect(ctx.signal.aborted).toBe(true);
        expect(() => {
          ctx.check();
        }).toThrow(TimeoutError);
      },
      { clock },
    );
    expect((ctxSignal?.reason as TimeoutError).scopeName).toBe('report');
    expect(clock.pendingTimers).toBe(0);
  });

  it('disposing clears its timer and unregisters it', () => {
    const clock = createManualClock();
    {
      using ctx = timeoutContext(1_000, { clock });
      expect(clock.pendingTimers).toBe(1);
      expect(pendingScopes().map((s) => s.scope)).toContain(ctx);
    }
    expect(clock.pendingTimers).toBe(0);
    expect(pendingScopes().filter((s) => s.scope.clock === clock)).toEqual([]);
  });

  it('inherits the outer deadline (min)', async () => {
    const clock = createManualClock();
    await withTimeout(
      30,
      () => {
        using ctx = timeoutContext(10_000);
        expect(ctx.deadline).toBe(30);
      },
      { clock },
    );
  });
});

describe('pendingScopes()', () => {
  it('lists running scopes with age, remaining time, parent, and overdue zombies', async () => {
    const clock = createManualClock();
    const hung = never(); // held here, so the zombie cannot be garbage collected during the test
    const run = observe(
      withTimeout(100, () => withTimeout(1_000, () => hung, { name: 'zombie' }), { clock, name: 'request' }),
    );
    await clock.advance(40);
    const mine = (): ReturnType<typeof pendingScopes> => pendingScopes().filter((s) => s.scope.clock === clock);
    expect(
      mine().map(({ name, ageMs, remainingMs, overdue, parent }) => ({ name, ageMs, remainingMs, overdue, parent })),
    ).toEqual([
      { name: 'request', ageMs: 40, remainingMs: 60, overdue: false, parent: undefined },
      { name: 'zombie', ageMs: 40, remainingMs: 60, overdue: false, parent: 'request' },
    ]);
    await clock.advance(60);
    expect(run.outcome.status).toBe('rejected');
    // Both functions ignored cancellation and are still running: reported as overdue.
    // 'request' settled (its inner call rejected); 'zombie' ignored cancellation and still runs.
    expect(mine().map((s) => [s.name, s.overdue])).toEqual([['zombie', true]]);
    expect(hung).toBeInstanceOf(Promise);
  });

  it('records where a scope was opened only while stack capture is on', async () => {
    const clock = createManualClock();
    expect(captureScopeStacks(true)).toBe(false);
    let withStack: string | undefined;
    let withoutStack: string | undefined = 'unset';
    try {
      await withTimeout(
        100,
        function openedHere() {
          withStack = pendingScopes().find((s) => s.name === 'openedHere')?.stack;
        },
        { clock },
      );
    } finally {
      expect(captureScopeStacks(false)).toBe(true);
    }
    await withTimeout(
      100,
      function openedThere() {
        withoutStack = pendingScopes().find((s) => s.name === 'openedThere')?.stack;
      },
      { clock },
    );
    expect(withStack).toContain('scope.test.ts');
    expect(withoutStack).toBeUndefined();
    expect(() => captureScopeStacks('yes' as never)).toThrow(/`enabled`/);
  });

  it('does not keep a zombie that can never settle alive', async () => {
    const clock = createManualClock();
    // Helpers keep the scope references out of this async function's saved frame.
    const listed = (): boolean => pendingScopes().some((s) => s.name === 'forgotten-zombie');
    const start = (): { readonly outcome: { status: string } } =>
      observe(withTimeout(10, () => never(), { clock, name: 'forgotten-zombie' }));
    const run = start();
    await clock.advance(10);
    expect(run.outcome.status).toBe('rejected');
    expect(listed()).toBe(true);
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(gc).toBeTypeOf('function');
    // No deref between collections: WeakRef.deref() keeps its target alive until the job ends.
    for (let i = 0; i < 10; i++) {
      gc?.();
      await clock.flush();
    }
    expect(listed()).toBe(false);
  });
});

describe('bad input', () => {
  it.each([
    [-1, RangeError],
    [Number.NaN, RangeError],
    ['100', TypeError],
    [undefined, TypeError],
  ])('withTimeout(%s) throws synchronously, naming timeoutMs', (ms, ErrorType) => {
    expect(() => withTimeout(ms as number, () => 1)).toThrow(ErrorType);
    expect(() => withTimeout(ms as number, () => 1)).toThrow(/`timeoutMs`/);
    expect(() => timeoutContext(ms as number)).toThrow(ErrorType);
  });

  it('rejects a non-function fn and bad options', () => {
    expect(() => withTimeout(1, 'fn' as never)).toThrow(/`fn`.*"fn"/);
    expect(() => withTimeout(1, () => 1, { timeout: 5 } as never)).toThrow(/Unknown option `timeout`/);
    expect(() => withTimeout(1, () => 1, { signal: 'x' } as never)).toThrow(/`signal`/);
    expect(() => withTimeout(1, () => 1, { name: 5 } as never)).toThrow(/`name`/);
    expect(() => timeoutContext(1, { clock: {} } as never)).toThrow(/`clock`/);
    expect(() => withDeadline(1, () => 1, null as never)).toThrow(/options of withDeadline\(\)/);
  });
});
