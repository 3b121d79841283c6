/**
 * The engine's invariants (ARCHITECTURE.md), pinned on the tree itself rather
 * than only through what the primitives do. The only tests that look inside
 * src/internal/.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { CancelNode } from '../../src/internal/engine/node.js';
import {
  channelNames,
  cooperativeForEach,
  currentScope,
  currentSignal,
  hedge,
  retry,
  safeGather,
  safeRace,
  safeSleep,
  safeWaitFor,
  Semaphore,
  singleFlight,
  timeoutContext,
  withTimeout,
  type Scope,
} from '../../src/index.js';
import { activeTimerCount, createManualClock } from '../../src/testing.js';
import { recordChannels } from '../fixtures/channels.js';
import { flush, never, observe } from '../fixtures/observe.js';

const inspect = (scope: Scope | undefined) => CancelNode.inspect(scope as unknown as CancelNode);
const listeners = (signal: AbortSignal): number => getEventListeners(signal, 'abort').length;

/** Every primitive that can follow an outside signal, each settling at once. */
const followers: Record<string, (signal: AbortSignal) => Promise<unknown>> = {
  safeSleep: (signal) => safeSleep(0, { signal }),
  'safeWaitFor(promise)': (signal) => safeWaitFor(Promise.resolve(1), { timeout: 60_000, signal }),
  'safeWaitFor(fn)': (signal) => safeWaitFor(() => 1, { timeout: 60_000, signal }),
  withTimeout: (signal) => withTimeout(60_000, () => Promise.resolve(1), { signal }),
  safeGather: (signal) => safeGather([() => 1, () => Promise.resolve(2)], { signal }),
  retry: (signal) => retry(() => Promise.resolve(1), { signal }),
  'Semaphore.acquire': (signal) => {
    const semaphore = new Semaphore(1);
    const held = semaphore.tryAcquire();
    const waiting = semaphore.acquire({ signal });
    held?.release();
    return waiting;
  },
  safeRace: (signal) =>
    safeRace(
      [
        (s) =>
          new Promise((_, reject) => {
            s.addEventListener('abort', reject);
          }),
        () => 1,
      ],
      { signal },
    ),
  hedge: (signal) => hedge((_s, attempt) => Promise.resolve(attempt), { delayMs: 60_000, signal }),
  'singleFlight(fn)(key)': (signal) => singleFlight((key: string) => Promise.resolve(key))('k', { signal }),
  'Semaphore.acquire of a bulkhead': (signal) => {
    const semaphore = new Semaphore(1, { maxQueue: 1 });
    const held = semaphore.tryAcquire();
    const waiting = semaphore.acquire({ signal });
    held?.release();
    return waiting;
  },
};

describe('listeners are removed before an operation settles', () => {
  it.each(Object.entries(followers))('%s: none left when its promise settles', async (_name, run) => {
    const controller = new AbortController();
    let atSettle = -1;
    let followingAtSettle = -1;
    await run(controller.signal).then(() => {
      atSettle = listeners(controller.signal);
      followingAtSettle = CancelNode.followers(controller.signal);
    });
    expect(atSettle).toBe(0);
    expect(followingAtSettle).toBe(0);
  });

  it.each(Object.entries(followers))('%s: none left when it is aborted', async (_name, run) => {
    const controller = new AbortController();
    const reason = new Error('stop');
    let atSettle = -1;
    const pending = run(controller.signal).then(
      () => undefined,
      (error: unknown) => {
        atSettle = listeners(controller.signal);
        return error;
      },
    );
    controller.abort(reason);
    const outcome = await pending;
    // Operations that had settled before the abort fulfil; the others reject with the reason itself.
    if (outcome !== undefined) expect(outcome).toBe(reason);
    expect(atSettle === -1 || atSettle === 0).toBe(true);
    expect(listeners(controller.signal)).toBe(0);
  });
});

describe('one listener per outside signal', () => {
  it('10,000 concurrent operations of every kind on one signal share one listener', async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    const { signal } = controller;
    const pending: Promise<unknown>[] = [];
    const load = singleFlight((_key: number) => never<number>());
    for (let i = 0; i < 10_000; i++) {
      switch (i % 8) {
        case 5:
          pending.push(safeRace([() => never(), () => never()], { signal, clock }));
          break;
        case 6:
          pending.push(hedge(() => never(), { delayMs: 500, signal, clock }));
          break;
        case 7:
          pending.push(load(i, { signal }));
          break;
        case 0:
          pending.push(safeSleep(1_000, { signal, clock }));
          break;
        case 1:
          pending.push(safeWaitFor(never(), { timeout: 1_000, signal, clock }));
          break;
        case 2:
          pending.push(withTimeout(1_000, () => never(), { signal, clock }));
          break;
        case 3:
          pending.push(safeGather([() => never()], { signal, clock }));
          break;
        default:
          pending.push(retry(() => never(), { signal, clock }));
      }
    }
    expect(listeners(signal)).toBe(1);
    expect(CancelNode.followers(signal)).toBe(10_000);
    const outcomes = pending.map((p) => observe(p));
    controller.abort('shutdown');
    await flush();
    expect(outcomes.every((o) => o.outcome.status === 'rejected')).toBe(true);
    expect(listeners(signal)).toBe(0);
    expect(CancelNode.followers(signal)).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('deadline timers', () => {
  it('no timer for a child whose parent’s deadline comes first; a timer for one whose own comes first', async () => {
    const clock = createManualClock();
    const seen: Record<string, ReturnType<typeof inspect>> = {};
    await withTimeout(
      100,
      async (outer) => {
        seen.outer = inspect(outer);
        await withTimeout(1_000, (later) => {
          seen.later = inspect(later);
        });
        await withTimeout(10, (earlier) => {
          seen.earlier = inspect(earlier);
        });
      },
      { clock },
    );
    expect(seen.outer?.armed).toBe(true);
    expect(seen.later?.armed).toBe(false);
    expect(seen.earlier?.armed).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });

  it('on the system clock, any number of pending deadlines share one platform timer', async () => {
    const before = activeTimerCount();
    const controller = new AbortController();
    const pending = Array.from({ length: 1_000 }, (_, i) =>
      withTimeout(60_000 + i, () => never(), { signal: controller.signal }),
    ).map((p) => observe(p));
    expect(activeTimerCount() - before).toBeLessThanOrEqual(1);
    controller.abort('done');
    await flush();
    expect(pending.every((p) => p.outcome.status === 'rejected')).toBe(true);
    // The shared timer no longer keeps the process alive once nothing is pending.
    expect(activeTimerCount()).toBeLessThanOrEqual(before);
  });
});

describe('the tree', () => {
  it('a scope is linked while its function runs, released when it and its children are done', async () => {
    const clock = createManualClock();
    let scope: Scope | undefined;
    let during: ReturnType<typeof inspect> | undefined;
    let floating: Promise<void> | undefined;
    await withTimeout(
      100,
      (s) => {
        scope = s;
        floating = safeSleep(50, { clock });
        during = inspect(s);
      },
      { clock },
    );
    expect(during).toMatchObject({ status: 'linked', children: 1, armed: true });
    // Its function is done, but the floating sleep still needs its deadline.
    expect(inspect(scope)).toMatchObject({ status: 'linked', children: 1, armed: true });
    await clock.advance(50);
    await floating;
    expect(inspect(scope)).toMatchObject({ status: 'released', children: 0, armed: false, parent: undefined });
    expect(clock.pendingTimers).toBe(0);
  });

  it('a released scope links again when new work starts in it, and releases again after', async () => {
    const clock = createManualClock();
    let scope: Scope | undefined;
    let resume: (() => Promise<void>) | undefined;
    await withTimeout(
      100,
      (s) => {
        scope = s;
        // A callback that runs later, in the scope's async context (as a timer or an event handler would).
        resume = AsyncLocalStorage.bind(() => safeSleep(10, { clock }));
      },
      { clock },
    );
    expect(inspect(scope).status).toBe('released');
    const later = observe(resume?.() ?? Promise.resolve());
    expect(inspect(scope)).toMatchObject({ status: 'linked', children: 1 });
    await clock.advance(10);
    expect(later.outcome.status).toBe('fulfilled');
    expect(inspect(scope)).toMatchObject({ status: 'released', children: 0, armed: false });
  });

  it('cancelling unlinks the whole subtree before anything inside is told', async () => {
    const clock = createManualClock();
    const seenInside: ReturnType<typeof inspect>[] = [];
    let outer: Scope | undefined;
    const run = observe(
      withTimeout(
        1_000,
        async (s) => {
          outer = s;
          await withTimeout(500, async (inner) => {
            inner.signal.addEventListener('abort', () => {
              seenInside.push(inspect(outer), inspect(inner));
            });
            await safeSleep(Infinity);
          });
        },
        { clock },
      ),
    );
    await clock.flush();
    outer?.cancel('stop');
    await clock.flush();
    expect(run.outcome).toEqual({ status: 'rejected', reason: 'stop' });
    expect(seenInside.map((s) => [s.status, s.children, s.armed, s.following])).toEqual([
      ['cancelled', 0, false, false],
      ['cancelled', 0, false, false],
    ]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('the running owner counts toward keeping the process alive; an unref’d sleep does not', async () => {
    const clock = createManualClock();
    let scope: Scope | undefined;
    await withTimeout(
      60_000,
      (s) => {
        scope = s;
        void safeSleep(4_000, { clock, unref: true }).catch(() => undefined);
        expect(inspect(s).refs).toBe(1); // the function itself
      },
      { clock },
    );
    // Only the unref'd sleep holds the scope now: nothing in it may keep the process alive.
    expect(inspect(scope)).toMatchObject({ status: 'linked', children: 1, refs: 0 });
    await clock.runAll();
  });

  it('a context outside any scope is a root; disposing it releases it', () => {
    const ctx = timeoutContext(1_000);
    expect(inspect(ctx)).toMatchObject({ status: 'linked', parent: undefined, armed: true });
    ctx[Symbol.dispose]();
    expect(inspect(ctx)).toMatchObject({ status: 'released', armed: false });
  });
});

/** A scope with a deadline `ms` away on `clock`, whose function has already returned. */
async function finishedScope(ms: number, clock: ReturnType<typeof createManualClock>): Promise<Scope> {
  let scope: Scope | undefined;
  await withTimeout(
    ms,
    (s) => {
      scope = s;
    },
    { clock },
  );
  if (scope === undefined) throw new Error('the scope function did not run');
  return scope;
}

describe('a released scope that is only looked at is released again', () => {
  /** Every way a callback that runs after its scope ended looks at the scope, without starting work in it. */
  const looks: Record<string, (scope: Scope) => unknown> = {
    'scope.signal': (scope) => scope.signal,
    'scope.check()': (scope) => {
      scope.check();
    },
    'currentSignal()': () => currentSignal(),
    'Semaphore.acquire() of a free permit': async () => {
      const permit = await new Semaphore(1).acquire();
      permit.release();
    },
    'cooperativeForEach()': () => cooperativeForEach([1, 2], () => undefined),
  };

  it.each(Object.entries(looks))(
    '%s: 1,000 finished scopes on a long-lived signal leave no follower and no link',
    async (_name, look) => {
      const server = new AbortController();
      const scopes: Scope[] = [];
      const later: (() => unknown)[] = [];
      for (let i = 0; i < 1_000; i++) {
        await withTimeout(
          Infinity,
          (s) => {
            scopes.push(s);
            // A callback that runs after the scope ended, in its async context (an event handler).
            later.push(AsyncLocalStorage.bind(() => look(s)));
          },
          { signal: server.signal },
        );
      }
      expect(CancelNode.followers(server.signal)).toBe(0);
      for (const run of later) await run();
      expect(CancelNode.followers(server.signal)).toBe(0);
      expect(listeners(server.signal)).toBe(0);
      expect(scopes.every((s) => inspect(s).status === 'released')).toBe(true);
    },
  );

  it.each(Object.entries(looks))('%s under a running scope: the parent keeps no child', async (_name, look) => {
    let finished: (() => unknown) | undefined;
    const outer = observe(
      withTimeout(Infinity, async (parent) => {
        await withTimeout(Infinity, (s) => {
          finished = AsyncLocalStorage.bind(() => look(s));
        });
        await finished?.();
        return inspect(parent).children;
      }),
    );
    await flush();
    expect(outer.outcome).toEqual({ status: 'fulfilled', value: 0 });
  });

  it('looked at after an enclosing scope was cancelled, it reports the cancellation', async () => {
    let look: (() => AbortSignal | undefined) | undefined;
    const reason = new Error('shutdown');
    let parent: Scope | undefined;
    const outer = observe(
      withTimeout(Infinity, async (p) => {
        parent = p;
        await withTimeout(Infinity, () => {
          look = AsyncLocalStorage.bind(() => currentSignal());
        });
        await never();
      }),
    );
    await flush();
    parent?.cancel(reason);
    expect(look?.()?.aborted).toBe(true);
    expect(look?.()?.reason).toBe(reason);
    await flush();
    expect(outer.outcome).toEqual({ status: 'rejected', reason });
  });

  it.each(Object.entries(looks))(
    '%s after the scope’s own signal aborted: the scopes above it are released again',
    async (_name, look) => {
      const later: (() => unknown)[] = [];
      const clients: AbortController[] = [];
      let server: Scope | undefined;
      const served = observe(
        withTimeout(60_000, async (s) => {
          server = s;
          for (let i = 0; i < 10; i++) {
            const client = new AbortController();
            clients.push(client);
            await withTimeout(Infinity, () =>
              withTimeout(
                Infinity,
                (inner) => {
                  later.push(AsyncLocalStorage.bind(() => look(inner)));
                },
                { signal: client.signal },
              ),
            );
          }
          for (const client of clients) client.abort(new Error('client gone'));
          for (const run of later) {
            try {
              await run();
            } catch {
              // check() throws the client's reason: the look saw the abort, as it should
            }
          }
          return inspect(s).children;
        }),
      );
      await flush();
      expect(served.outcome).toEqual({ status: 'fulfilled', value: 0 });
      expect(inspect(server)).toMatchObject({ status: 'released', armed: false });
    },
  );

  it('check() after the scope ended leaves no timer, and no timeout is published at its deadline', async () => {
    const clock = createManualClock();
    using recorder = recordChannels([channelNames.timeout]);
    const scope = await finishedScope(100, clock);
    await clock.advance(50);
    scope.check();
    expect(inspect(scope)).toMatchObject({ status: 'released', armed: false });
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(100);
    expect(recorder.messages(channelNames.timeout)).toHaveLength(0);
    // Past the deadline, it says so (once), and that is the scope's own TimeoutError.
    expect(() => {
      scope.check();
    }).toThrow(/timed out/);
    expect(recorder.messages(channelNames.timeout)).toHaveLength(1);
  });

  it('the signal of a scope with a deadline, read after it ended, aborts at that deadline', async () => {
    const clock = createManualClock();
    const scope = await finishedScope(100, clock);
    const signal = scope.signal;
    expect(inspect(scope)).toMatchObject({ status: 'linked', armed: true });
    await clock.advance(99);
    expect(signal.aborted).toBe(false);
    await clock.advance(1);
    expect(signal.aborted).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('a cancellation tells every node after marking them all', () => {
  it('the followers of one signal are told in the order they began to follow it', async () => {
    const controller = new AbortController();
    const told: string[] = [];
    const runs = ['first', 'second', 'third'].map((name) =>
      observe(
        withTimeout(
          Infinity,
          (s) => {
            s.signal.addEventListener('abort', () => told.push(name));
            return never();
          },
          { signal: controller.signal, name },
        ),
      ),
    );
    await flush();
    controller.abort(new Error('stop'));
    expect(told).toEqual(['first', 'second', 'third']);
    await flush();
    expect(runs.every((run) => run.outcome.status === 'rejected')).toBe(true);
  });

  it('a permit freed by a follower told first is not handed to a waiter on the same signal already cancelled', async () => {
    const controller = new AbortController();
    const semaphore = new Semaphore(1);
    const held = semaphore.tryAcquire();
    const reason = new Error('stop');
    const holder = observe(
      withTimeout(
        Infinity,
        (s) => {
          s.signal.addEventListener('abort', () => held?.release());
          return never();
        },
        { signal: controller.signal },
      ),
    );
    const waiter = observe(semaphore.acquire({ signal: controller.signal }));
    await flush();
    controller.abort(reason);
    await flush();
    expect(holder.outcome).toEqual({ status: 'rejected', reason });
    expect(waiter.outcome).toEqual({ status: 'rejected', reason });
    expect(semaphore.available).toBe(1);
    expect(semaphore.waiting).toBe(0);
  });

  it('a permit freed by a sibling told first is not handed to a waiter in the same cancelled tree', async () => {
    const semaphore = new Semaphore(1);
    const held = semaphore.tryAcquire();
    const reason = new Error('stop');
    let outer: Scope | undefined;
    let waiter: { readonly outcome: unknown } | undefined;
    const run = observe(
      withTimeout(Infinity, (s) => {
        outer = s;
        const holder = withTimeout(Infinity, (h) => {
          h.signal.addEventListener('abort', () => held?.release());
          return never();
        });
        waiter = observe(semaphore.acquire());
        return Promise.all([holder, never()]);
      }),
    );
    await flush();
    expect(semaphore.waiting).toBe(1);
    outer?.cancel(reason);
    await flush();
    expect(run.outcome).toEqual({ status: 'rejected', reason });
    expect(waiter?.outcome).toEqual({ status: 'rejected', reason });
    expect(semaphore.available).toBe(1);
    expect(semaphore.waiting).toBe(0);
  });
});

describe('depth: loops, not recursion', () => {
  /** Opens `depth` nested scopes, each opened after an await, and resolves with the innermost. */
  function nest(depth: number, clock: ReturnType<typeof createManualClock>, timeoutMs: number) {
    let innermost: Scope | undefined;
    const open = async (left: number): Promise<void> => {
      await Promise.resolve();
      if (left === 0) {
        innermost = currentScope();
        await never();
        return;
      }
      await withTimeout(timeoutMs, () => open(left - 1), { clock });
    };
    const run = observe(withTimeout(timeoutMs, () => open(depth - 1), { clock, name: 'root' }));
    return { run, innermost: () => innermost };
  }

  it('cancelling a chain of 100,000 nested scopes settles without a stack overflow', async () => {
    const clock = createManualClock();
    const chain = nest(100_000, clock, Number.POSITIVE_INFINITY);
    while (chain.innermost() === undefined) await clock.flush();
    let root: Scope | undefined = chain.innermost();
    while (root?.parent !== undefined) root = root.parent;
    root?.cancel('stop');
    await clock.flush();
    expect(chain.run.outcome).toEqual({ status: 'rejected', reason: 'stop' });
    expect(chain.innermost()?.signal.aborted).toBe(true);
  }, 20_000);

  it('expiring a chain of 100,000 nested scopes settles without a stack overflow', async () => {
    const clock = createManualClock();
    const chain = nest(100_000, clock, 1_000);
    while (chain.innermost() === undefined) await clock.flush();
    expect(clock.pendingTimers).toBe(1); // one timer for the whole chain: the root's
    await clock.advance(1_000);
    expect(chain.run.outcome.status).toBe('rejected');
    expect(chain.innermost()?.signal.reason).toMatchObject({ name: 'TimeoutError', scopeName: 'root' });
  }, 20_000);
});
