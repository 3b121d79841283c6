import { describe, expect, it } from 'vitest';
import {
  currentScope,
  GatherError,
  pendingScopes,
  safeRace,
  safeSleep,
  TimeoutError,
  withTimeout,
  type RaceMessage,
} from '../src/index.js';
import { abortListenerCount, createManualClock } from '../src/testing.js';
import { recordChannels } from './fixtures/channels.js';
import { flush, observe, trackUnhandledRejections, untilAborted } from './fixtures/observe.js';

const reasonOf = (outcome: { status: string }): unknown => {
  expect(outcome.status).toBe('rejected');
  return (outcome as { reason?: unknown }).reason;
};

/** A task that resolves with `value` after `ms` on `clock`, honouring its signal; records its signal. */
function after<T>(clock: ReturnType<typeof createManualClock>, ms: number, value: T, signals: AbortSignal[] = []) {
  return (signal: AbortSignal): Promise<T> => {
    signals.push(signal);
    return safeSleep(ms, { clock, signal }).then(() => value);
  };
}

/** Hangs until its signal aborts, then rejects with the reason: a well-behaved slow task. */
const hang = untilAborted;

describe('safeRace()', () => {
  it('fulfils with the first task to fulfil and aborts every other in the same tick', async () => {
    const clock = createManualClock();
    const signals: AbortSignal[] = [];
    const run = observe(
      safeRace(
        [after(clock, 30, 'slow', signals), after(clock, 10, 'fast', signals), after(clock, 20, 'mid', signals)],
        {
          clock,
        },
      ),
    );
    await clock.advance(10);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'fast' });
    expect(signals.map((s) => s.aborted)).toEqual([true, false, true]);
    expect((signals[0]?.reason as DOMException).name).toBe('AbortError');
    expect((signals[0]?.reason as DOMException).message).toMatch(/safeRace.*another task won/);
    expect(signals[0]?.reason).toBe(signals[2]?.reason);
    expect(clock.pendingTimers).toBe(0);
    expect(pendingScopes()).toEqual([]);
  });

  it('a rejection never wins: it waits for a task that fulfils', async () => {
    const clock = createManualClock();
    const run = observe(safeRace([() => Promise.reject(new Error('fast failure')), after(clock, 10, 'ok')], { clock }));
    await flush();
    expect(run.outcome.status).toBe('pending');
    await clock.advance(10);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'ok' });
  });

  it('all rejecting rejects with a GatherError of every error, in the order they happened', async () => {
    const clock = createManualClock();
    const [a, b, c] = [new Error('a'), new Error('b'), new Error('c')];
    const fail = (ms: number, error: Error) => (signal: AbortSignal) =>
      safeSleep(ms, { clock, signal }).then(() => Promise.reject(error));
    const run = observe(
      safeRace(
        [
          fail(30, a),
          fail(10, b),
          () => {
            throw c;
          },
        ],
        { clock },
      ),
    );
    await clock.advance(30);
    const error = reasonOf(run.outcome) as GatherError;
    expect(error).toBeInstanceOf(GatherError);
    expect(error.errors).toEqual([c, b, a]);
    expect(error.cause).toBe(c);
    expect(clock.pendingTimers).toBe(0);
  });

  it('a synchronous winner wins before the tasks after it start; values of any kind', async () => {
    const started: number[] = [];
    const value = await safeRace([
      (signal: AbortSignal) => (started.push(0), hang(signal)),
      () => (started.push(1), 'sync'),
      () => (started.push(2), 'never started'),
    ]);
    expect(value).toBe('sync');
    expect(started).toEqual([0, 1]);
    expect(await safeRace([() => null])).toBeNull();
    expect(await safeRace(new Set([() => Promise.resolve(7)]))).toBe(7);
  });

  it('a loser that ignores its signal cannot delay the result; its late rejection is absorbed', async () => {
    const tracker = trackUnhandledRejections();
    let rejectLate!: (reason: unknown) => void;
    const stubborn = () =>
      new Promise<string>((_, reject) => {
        rejectLate = reject;
      });
    const run = observe(safeRace([stubborn, () => Promise.resolve('winner')], { name: 'replicas' }));
    await flush();
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'winner' });
    // Listed as overdue until it settles, under its own name.
    expect(pendingScopes().map((s) => s.name)).toEqual(['replicas[0]']);
    rejectLate(new Error('late'));
    await flush();
    await flush();
    expect(pendingScopes()).toEqual([]);
    tracker.stop();
    expect(tracker.reasons).toEqual([]);
  });

  it('rejects with the caller’s reason (===), aborting every task, and leaves no listener', async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    const signals: AbortSignal[] = [];
    const run = observe(
      safeRace([after(clock, 100, 1, signals), after(clock, 200, 2, signals)], { clock, signal: controller.signal }),
    );
    expect(abortListenerCount(controller.signal)).toBe(1);
    const reason = { why: 'shutdown' };
    controller.abort(reason);
    await flush();
    expect(reasonOf(run.outcome)).toBe(reason);
    expect(signals.every((s) => s.aborted && s.reason === reason)).toBe(true);
    expect(abortListenerCount(controller.signal)).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('an already-aborted signal rejects with its reason and starts no task', async () => {
    const reason = new Error('already');
    let started = false;
    const error = await safeRace([() => (started = true)], { signal: AbortSignal.abort(reason) }).catch(
      (e: unknown) => e,
    );
    expect(error).toBe(reason);
    expect(started).toBe(false);
  });

  it('rejects at its own timeout with its TimeoutError, and at an enclosing deadline with that scope’s', async () => {
    const clock = createManualClock();
    const own = observe(safeRace([hang, hang], { clock, timeout: 50, name: 'mirrors' }));
    const outer = observe(withTimeout(30, () => safeRace([hang], { timeout: 1_000 }), { clock, name: 'request' }));
    await clock.advance(30);
    expect((reasonOf(outer.outcome) as TimeoutError).scopeName).toBe('request');
    expect(own.outcome.status).toBe('pending');
    await clock.advance(20);
    const error = reasonOf(own.outcome) as TimeoutError;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error.scopeName).toBe('mirrors');
    expect(clock.pendingTimers).toBe(0);
  });

  it('runs each task in a child scope of its own: a loser’s nested loopsafe calls stop with it', async () => {
    const clock = createManualClock();
    const names: (string | undefined)[] = [];
    let loserSleep: { outcome: { status: string } } | undefined;
    const run = observe(
      safeRace(
        [
          (signal: AbortSignal) => {
            names.push(currentScope()?.name);
            loserSleep = observe(safeSleep(1_000)); // no signal passed: the ambient scope stops it
            return hang(signal);
          },
          async () => {
            names.push(currentScope()?.name);
            await safeSleep(10);
            return 'won';
          },
        ],
        { clock, name: 'lookup' },
      ),
    );
    await clock.advance(10);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'won' });
    expect(names).toEqual(['lookup[0]', 'lookup[1]']);
    expect(loserSleep?.outcome.status).toBe('rejected');
    expect(clock.pendingTimers).toBe(0);
  });

  it('a task that cancels its own scope fails with the reason, even if it returns a value (sync or async)', async () => {
    const error = await safeRace([
      () => {
        currentScope()?.cancel('R1');
        return 'sync value';
      },
      async () => {
        currentScope()?.cancel('R2');
        await Promise.resolve();
        return 'async value';
      },
    ]).catch((e: unknown) => e);
    expect((error as GatherError).errors).toEqual(['R1', 'R2']);
  });

  it('publishes the winner and the losers aborted on loopsafe:race', async () => {
    const recorder = recordChannels(['loopsafe:race']);
    try {
      await safeRace([hang, () => 'b', () => 'never started'], { name: 'r' });
      await safeRace([() => 'a']);
      expect(recorder.messages<RaceMessage>('loopsafe:race')).toEqual([
        { name: 'r', winner: 1, aborted: 1 },
        { name: 'safeRace', winner: 0, aborted: 0 },
      ]);
    } finally {
      recorder.stop();
    }
  });

  it('an empty race throws a RangeError at the call site (a race of nothing never settles)', () => {
    expect(() => safeRace([])).toThrow(RangeError);
    expect(() => safeRace([])).toThrow(/`tasks`.*none/);
    expect(() => safeRace(new Set<() => number>())).toThrow(RangeError);
  });

  it('10,000 races on one long-lived signal leave no listener and no timer', async () => {
    const clock = createManualClock();
    const parent = new AbortController();
    for (let i = 0; i < 10_000; i++) {
      await safeRace([hang, () => Promise.resolve(i)], { signal: parent.signal, clock, timeout: 60_000 });
    }
    expect(abortListenerCount(parent.signal)).toBe(0);
    expect(clock.pendingTimers).toBe(0);
    await flush();
    expect(pendingScopes()).toEqual([]);
  });
});
