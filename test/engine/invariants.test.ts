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
  currentScope,
  retry,
  safeGather,
  safeSleep,
  safeWaitFor,
  Semaphore,
  timeoutContext,
  withTimeout,
  type Scope,
} from '../../src/index.js';
import { activeTimerCount, createManualClock } from '../../src/testing.js';
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
    for (let i = 0; i < 10_000; i++) {
      switch (i % 5) {
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
