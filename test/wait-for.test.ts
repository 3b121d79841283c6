import { describe, expect, it } from 'vitest';
import { TimeoutError } from '../src/errors.js';
import { currentScope, withTimeout } from '../src/scope.js';
import { safeSleep } from '../src/sleep.js';
import { safeWaitFor } from '../src/wait-for.js';
import { abortListenerCount, createManualClock } from '../src/testing.js';
import { never, observe, trackUnhandledRejections } from './fixtures/observe.js';

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (reason: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('safeWaitFor(promise)', () => {
  it('resolves with the value and clears its timer', async () => {
    const clock = createManualClock();
    await expect(safeWaitFor(Promise.resolve(42), { timeout: 1_000, clock })).resolves.toBe(42);
    expect(clock.pendingTimers).toBe(0);
  });

  it('passes a rejection through unchanged (===)', async () => {
    const clock = createManualClock();
    const error = new Error('upstream 500');
    await expect(safeWaitFor(Promise.reject(error), { timeout: 1_000, clock })).rejects.toBe(error);
    expect(clock.pendingTimers).toBe(0);
  });

  it('bounds a promise that never settles, at exactly the timeout', async () => {
    const clock = createManualClock();
    const waiting = observe(safeWaitFor(never(), { timeout: 100, clock, name: 'inventory' }));
    await clock.advance(99);
    expect(waiting.outcome.status).toBe('pending');
    await clock.advance(1);
    const reason = (waiting.outcome as { reason: unknown }).reason as TimeoutError;
    expect(reason).toBeInstanceOf(TimeoutError);
    expect(reason.scopeName).toBe('inventory');
    expect(reason.timeoutMs).toBe(100);
    expect(clock.pendingTimers).toBe(0);
  });

  it('absorbs a late rejection after the timeout: no unhandledRejection', async () => {
    const tracker = trackUnhandledRejections();
    try {
      const clock = createManualClock();
      const late = deferred<number>();
      const waiting = observe(safeWaitFor(late.promise, { timeout: 10, clock }));
      await clock.advance(10);
      expect(waiting.outcome.status).toBe('rejected');
      late.reject(new Error('too late'));
      await clock.flush();
      await clock.flush();
      expect(tracker.reasons).toEqual([]);
    } finally {
      tracker.stop();
    }
  });

  it('uses the fallback on its own timeout', async () => {
    const clock = createManualClock();
    let seen: unknown;
    const waiting = observe(
      safeWaitFor(never<string>(), {
        timeout: 10,
        clock,
        fallback: (error) => {
          seen = error;
          return 'cached';
        },
      }),
    );
    await clock.advance(10);
    expect(waiting.outcome).toEqual({ status: 'fulfilled', value: 'cached' });
    expect(seen).toBeInstanceOf(TimeoutError);
  });

  it('a pending async fallback is not overtaken by the original promise settling late', async () => {
    const clock = createManualClock();
    let settleLate: ((value: string) => void) | undefined;
    const original = new Promise<string>((resolve) => {
      settleLate = resolve;
    });
    const waiting = observe(
      safeWaitFor(original, {
        timeout: 10,
        clock,
        fallback: async () => {
          await safeSleep(20, { clock });
          return 'fallback';
        },
      }),
    );
    await clock.advance(10); // the timeout: the fallback's turn
    settleLate?.('too late');
    await clock.advance(5);
    expect(waiting.outcome).toEqual({ status: 'pending' });
    await clock.advance(15);
    expect(waiting.outcome).toEqual({ status: 'fulfilled', value: 'fallback' });
  });

  it('a pending async fallback is not overtaken by the original promise rejecting late', async () => {
    const clock = createManualClock();
    let failLate: ((reason: Error) => void) | undefined;
    const original = new Promise<string>((_resolve, reject) => {
      failLate = reject;
    });
    const waiting = observe(
      safeWaitFor(original, {
        timeout: 10,
        clock,
        fallback: () => safeSleep(20, { clock }).then(() => 'fallback'),
      }),
    );
    await clock.advance(10);
    failLate?.(new Error('too late'));
    await clock.advance(20);
    expect(waiting.outcome).toEqual({ status: 'fulfilled', value: 'fallback' });
  });

  it('rejects with the fallback’s own error when the fallback throws', async () => {
    const clock = createManualClock();
    const failure = new Error('no cache');
    const waiting = observe(
      safeWaitFor(never(), {
        timeout: 10,
        clock,
        fallback: () => {
          throw failure;
        },
      }),
    );
    await clock.advance(10);
    expect((waiting.outcome as { reason: unknown }).reason).toBe(failure);
  });

  it('does not use the fallback when the caller aborts', async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    const waiting = observe(
      safeWaitFor(never(), { timeout: 100, clock, signal: controller.signal, fallback: () => 'nope' }),
    );
    controller.abort('cancelled');
    await clock.flush();
    expect(waiting.outcome).toEqual({ status: 'rejected', reason: 'cancelled' });
    expect(abortListenerCount(controller.signal)).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('an enclosing deadline that comes first wins, with that scope’s error, and no fallback', async () => {
    const clock = createManualClock();
    const run = observe(
      withTimeout(20, () => safeWaitFor(never(), { timeout: 1_000, fallback: () => 'nope' }), { clock, name: 'outer' }),
    );
    expect(clock.pendingTimers).toBe(1); // only the outer deadline: the inner wait needs no timer of its own
    await clock.advance(20);
    const reason = (run.outcome as { reason: unknown }).reason as TimeoutError;
    expect(reason.scopeName).toBe('outer');
  });

  it('accepts a thenable', async () => {
    const thenable = {
      then(onFulfilled: (value: string) => void) {
        onFulfilled('from thenable');
      },
    } as unknown as PromiseLike<string>;
    await expect(safeWaitFor(thenable, 100)).resolves.toBe('from thenable');
  });

  it('with no timeout, waits until the signal aborts', async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    const waiting = observe(safeWaitFor(never(), { clock, signal: controller.signal }));
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(10 ** 9);
    expect(waiting.outcome.status).toBe('pending');
    controller.abort(0);
    await clock.flush();
    expect(waiting.outcome).toEqual({ status: 'rejected', reason: 0 });
  });

  it.each([{}, 'text', 0, false])('an already-aborted signal with reason %s rejects with it (===)', async (reason) => {
    const controller = new AbortController();
    controller.abort(reason);
    const outcome = await safeWaitFor(Promise.resolve(1), { timeout: 10, signal: controller.signal }).then(
      () => 'fulfilled',
      (error: unknown) => error,
    );
    expect(outcome).toBe(reason);
  });
});

describe('safeWaitFor(fn)', () => {
  it('gives the function a signal that aborts at the timeout, with the TimeoutError', async () => {
    const clock = createManualClock();
    let signal: AbortSignal | undefined;
    const waiting = observe(
      safeWaitFor(
        (s) => {
          signal = s;
          return never();
        },
        { timeout: 30, clock },
      ),
    );
    expect(signal?.aborted).toBe(false);
    await clock.advance(30);
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBeInstanceOf(TimeoutError);
    expect((waiting.outcome as { reason: unknown }).reason).toBe(signal?.reason);
  });

  it('runs the function inside its own scope, so nested primitives see the deadline', async () => {
    const clock = createManualClock();
    const remaining = await safeWaitFor(() => currentScope()?.remaining(), { timeout: 250, clock });
    expect(remaining).toBe(250);
  });

  it('names the scope after the function by default', async () => {
    const clock = createManualClock();
    const waiting = observe(
      safeWaitFor(
        function fetchQuote() {
          return never();
        },
        { timeout: 5, clock },
      ),
    );
    await clock.advance(5);
    expect(((waiting.outcome as { reason: unknown }).reason as TimeoutError).scopeName).toBe('fetchQuote');
  });

  it('uses the fallback on its own timeout only', async () => {
    const clock = createManualClock();
    const waiting = observe(safeWaitFor(() => never<string>(), { timeout: 10, clock, fallback: () => 'stale' }));
    await clock.advance(10);
    expect(waiting.outcome).toEqual({ status: 'fulfilled', value: 'stale' });
  });

  it('synchronous values and throws are passed through', async () => {
    await expect(safeWaitFor(() => 7, 10)).resolves.toBe(7);
    const error = new Error('sync');
    await expect(
      safeWaitFor(() => {
        throw error;
      }, 10),
    ).rejects.toBe(error);
  });
});

describe('safeWaitFor bad input', () => {
  it.each([
    [undefined, TypeError],
    [42, TypeError],
    [{}, TypeError],
    ['promise', TypeError],
  ])('rejects task %s synchronously', (task, ErrorType) => {
    expect(() => safeWaitFor(task as never, 10)).toThrow(ErrorType);
    expect(() => safeWaitFor(task as never, 10)).toThrow(/`task`/);
  });

  it.each([
    [-5, RangeError],
    [Number.NaN, RangeError],
    ['5', TypeError],
    [null, TypeError],
  ])('rejects timeout %s synchronously', (timeout, ErrorType) => {
    expect(() => safeWaitFor(Promise.resolve(), timeout as never)).toThrow(ErrorType);
    expect(() => safeWaitFor(Promise.resolve(), { timeout: timeout as never })).toThrow(/`timeout`/);
  });

  it('rejects unknown and mistyped options', () => {
    expect(() => safeWaitFor(Promise.resolve(), { timout: 10 } as never)).toThrow(/Unknown option `timout`/);
    expect(() => safeWaitFor(Promise.resolve(), { fallback: 'x' } as never)).toThrow(/`fallback`.*"x"/);
    expect(() => safeWaitFor(Promise.resolve(), { name: 3 } as never)).toThrow(/`name`.*3/);
  });
});
