import { describe, expect, it } from 'vitest';
import {
  currentScope,
  GatherError,
  hedge,
  pendingScopes,
  safeSleep,
  TimeoutError,
  withTimeout,
  type HedgeMessage,
} from '../src/index.js';
import { abortListenerCount, createManualClock, type ManualClock } from '../src/testing.js';
import { recordChannels } from './fixtures/channels.js';
import { flush, observe, trackUnhandledRejections } from './fixtures/observe.js';

const reasonOf = (outcome: { status: string }): unknown => {
  expect(outcome.status).toBe('rejected');
  return (outcome as { reason?: unknown }).reason;
};

interface Started {
  attempt: number;
  at: number;
  signal: AbortSignal;
}

/**
 * An operation whose attempt `n` takes `latencies[n - 1]` ms on `clock` (or
 * fails then, for an Error), honouring its signal; records each start.
 */
function operation(clock: ManualClock, latencies: readonly (number | [number, Error])[]) {
  const started: Started[] = [];
  const fn = async (signal: AbortSignal, attempt: number): Promise<string> => {
    started.push({ attempt, at: clock.now(), signal });
    const spec = latencies[attempt - 1] ?? 1_000_000;
    const [ms, error] = typeof spec === 'number' ? [spec, undefined] : spec;
    await safeSleep(ms, { clock, signal });
    if (error !== undefined) throw error;
    return `attempt ${String(attempt)}`;
  };
  return { fn, started };
}

describe('hedge()', () => {
  it('returns the first attempt when it fulfils within delayMs, starting no other', async () => {
    const clock = createManualClock();
    const { fn, started } = operation(clock, [30]);
    const run = observe(hedge(fn, { delayMs: 50, maxAttempts: 3, clock }));
    await clock.advance(30);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'attempt 1' });
    expect(started.map((s) => s.attempt)).toEqual([1]);
    expect(clock.pendingTimers).toBe(0); // the delay's timer was cleared
  });

  it('starts another attempt each delayMs, up to maxAttempts; the first to fulfil wins, the losers are aborted', async () => {
    const clock = createManualClock();
    const { fn, started } = operation(clock, [1_000, 1_000, 25]);
    const run = observe(hedge(fn, { delayMs: 50, maxAttempts: 4, clock }));
    await clock.advance(49);
    expect(started.map((s) => s.attempt)).toEqual([1]);
    await clock.advance(1);
    expect(started.map((s) => [s.attempt, s.at])).toEqual([
      [1, 0],
      [2, 50],
    ]);
    await clock.advance(50);
    expect(started.map((s) => [s.attempt, s.at])).toEqual([
      [1, 0],
      [2, 50],
      [3, 100],
    ]);
    await clock.advance(25); // attempt 3 fulfils at 125, before attempt 4 would start at 150
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'attempt 3' });
    expect(started.map((s) => s.signal.aborted)).toEqual([true, true, false]);
    expect((started[0]?.signal.reason as DOMException).name).toBe('AbortError');
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(1_000);
    expect(started).toHaveLength(3);
  });

  it('never starts more than maxAttempts, and then waits for the running ones', async () => {
    const clock = createManualClock();
    const { fn, started } = operation(clock, [300, 300]);
    const run = observe(hedge(fn, { delayMs: 10, maxAttempts: 2, clock }));
    await clock.advance(100);
    expect(started).toHaveLength(2);
    expect(clock.pendingTimers).toBe(2); // the two attempts' sleeps; no delay timer is armed any more
    await clock.advance(200);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'attempt 1' });
    expect(started[1]?.signal.aborted).toBe(true);
  });

  it('a failing attempt starts the next one at once; the delay then counts from that start', async () => {
    const clock = createManualClock();
    const { fn, started } = operation(clock, [[5, new Error('reset')], 1_000, 10]);
    const run = observe(hedge(fn, { delayMs: 50, maxAttempts: 3, clock }));
    await clock.advance(5);
    expect(started.map((s) => [s.attempt, s.at])).toEqual([
      [1, 0],
      [2, 5],
    ]);
    await clock.advance(49);
    expect(started).toHaveLength(2);
    await clock.advance(1);
    expect(started.map((s) => [s.attempt, s.at])).toEqual([
      [1, 0],
      [2, 5],
      [3, 55],
    ]);
    await clock.advance(10);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'attempt 3' });
  });

  it('every attempt failing rejects with a GatherError of all their errors, in the order they happened', async () => {
    const clock = createManualClock();
    const [a, b, c] = [new Error('a'), new Error('b'), new Error('c')];
    const { fn } = operation(clock, [
      [100, a],
      [10, b],
      [0, c],
    ]);
    const run = observe(hedge(fn, { delayMs: 20, maxAttempts: 3, clock }));
    await clock.advance(100);
    const error = reasonOf(run.outcome) as GatherError;
    expect(error).toBeInstanceOf(GatherError);
    // Attempt 2 starts at 20 and fails at 30, starting attempt 3, which fails at once; attempt 1 fails at 100.
    expect(error.errors).toEqual([b, c, a]);
    expect(error.cause).toBe(b);
    expect(clock.pendingTimers).toBe(0);
  });

  it('maxAttempts 1 is a plain call; delayMs Infinity hedges on failure only', async () => {
    const clock = createManualClock();
    const single = operation(clock, [[10, new Error('only')]]);
    const one = observe(hedge(single.fn, { delayMs: 1, maxAttempts: 1, clock }));
    await clock.advance(10);
    expect((reasonOf(one.outcome) as GatherError).errors).toHaveLength(1);
    expect(single.started).toHaveLength(1);

    const onFailure = operation(clock, [[500, new Error('x')], 10]);
    const run = observe(hedge(onFailure.fn, { delayMs: Number.POSITIVE_INFINITY, maxAttempts: 2, clock }));
    await clock.advance(499);
    expect(onFailure.started).toHaveLength(1);
    expect(clock.pendingTimers).toBe(1); // the attempt's sleep alone
    await clock.advance(11);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'attempt 2' });
  });

  it('never starts an attempt past the deadline: rejects with the TimeoutError, every attempt aborted', async () => {
    const clock = createManualClock();
    const { fn, started } = operation(clock, [1_000, 1_000, 1_000]);
    const run = observe(hedge(fn, { delayMs: 40, maxAttempts: 3, timeout: 60, clock, name: 'lookup' }));
    await clock.advance(60);
    const error = reasonOf(run.outcome) as TimeoutError;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error.scopeName).toBe('lookup');
    expect(started.map((s) => [s.attempt, s.at])).toEqual([
      [1, 0],
      [2, 40],
    ]);
    expect(started.every((s) => s.signal.aborted && s.signal.reason === error)).toBe(true);
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(1_000);
    expect(started).toHaveLength(2);
  });

  it('a delay due exactly at the enclosing deadline starts no attempt', async () => {
    const clock = createManualClock();
    const { fn, started } = operation(clock, [1_000, 1_000]);
    const run = observe(withTimeout(50, () => hedge(fn, { delayMs: 50, clock }), { clock, name: 'request' }));
    await clock.advance(50);
    expect((reasonOf(run.outcome) as TimeoutError).scopeName).toBe('request');
    expect(started).toHaveLength(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it('a failure after the deadline passed (no timer could fire: a blocked loop) starts nothing', async () => {
    let now = 0;
    const clock = { now: () => now, setTimeout: () => 0, clearTimeout: () => undefined };
    let failFirst!: (error: Error) => void;
    const started: number[] = [];
    const run = observe(
      hedge(
        (_signal, attempt) => {
          started.push(attempt);
          return new Promise<string>((_, reject) => {
            failFirst = reject;
          });
        },
        { delayMs: 1_000, maxAttempts: 3, timeout: 100, clock },
      ),
    );
    now = 150; // past the deadline; the deadline's timer never fired
    failFirst(new Error('late failure'));
    await flush();
    expect(reasonOf(run.outcome)).toBeInstanceOf(TimeoutError);
    expect(started).toEqual([1]);
  });

  it('rejects with the caller’s reason (===), aborting every attempt, with no listener or timer left', async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    const { fn, started } = operation(clock, [1_000, 1_000]);
    const run = observe(hedge(fn, { delayMs: 10, clock, signal: controller.signal }));
    await clock.advance(10);
    const reason = Symbol('stop');
    controller.abort(reason);
    await flush();
    expect(reasonOf(run.outcome)).toBe(reason);
    expect(started.every((s) => s.signal.reason === reason)).toBe(true);
    expect(abortListenerCount(controller.signal)).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('a loser that ignores its signal cannot delay the result; its late rejection is absorbed', async () => {
    const tracker = trackUnhandledRejections();
    const clock = createManualClock();
    let rejectLate!: (error: Error) => void;
    const run = observe(
      hedge(
        (_signal, attempt) =>
          attempt === 1
            ? new Promise<string>((_, reject) => {
                rejectLate = reject;
              })
            : Promise.resolve('hedged'),
        { delayMs: 10, clock, name: 'stubborn' },
      ),
    );
    await clock.advance(10);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'hedged' });
    expect(pendingScopes().map((s) => s.name)).toEqual(['stubborn[0]']);
    rejectLate(new Error('late'));
    await flush();
    await flush();
    expect(pendingScopes()).toEqual([]);
    tracker.stop();
    expect(tracker.reasons).toEqual([]);
  });

  it('runs each attempt in a child scope named name[n - 1], and synchronous attempts too', async () => {
    const clock = createManualClock();
    const names: (string | undefined)[] = [];
    const value = await hedge(
      (_signal, attempt) => {
        names.push(currentScope()?.name);
        if (attempt === 1) throw new Error('sync failure');
        return attempt;
      },
      { delayMs: 100, maxAttempts: 3, clock, name: 'calc' },
    );
    expect(value).toBe(2);
    expect(names).toEqual(['calc[0]', 'calc[1]']);
    expect(clock.pendingTimers).toBe(0);
    const allSync = await hedge(
      () => {
        throw new Error('always');
      },
      { delayMs: 100, maxAttempts: 3, clock },
    ).catch((e: unknown) => e);
    expect((allSync as GatherError).errors).toHaveLength(3);
    expect(clock.pendingTimers).toBe(0);
  });

  it('publishes each hedged start on loopsafe:hedge, with its trigger', async () => {
    const clock = createManualClock();
    const recorder = recordChannels(['loopsafe:hedge']);
    try {
      const { fn } = operation(clock, [[5, new Error('x')], 1_000, 10]);
      const run = observe(hedge(fn, { delayMs: 50, maxAttempts: 3, clock, name: 'h' }));
      await clock.advance(65);
      expect(run.outcome.status).toBe('fulfilled');
      expect(recorder.messages<HedgeMessage>('loopsafe:hedge')).toEqual([
        { name: 'h', attempt: 2, trigger: 'failure', running: 0 },
        { name: 'h', attempt: 3, trigger: 'delay', running: 1 },
      ]);
    } finally {
      recorder.stop();
    }
  });

  it('1,000 hedges on one long-lived signal leave no listener, timer or scope', async () => {
    const clock = createManualClock();
    const parent = new AbortController();
    for (let i = 0; i < 1_000; i++) {
      const run = hedge(
        (signal, attempt) =>
          attempt === 1 ? safeSleep(1_000, { clock, signal }).then(() => -1) : Promise.resolve(attempt),
        { delayMs: 5, clock, signal: parent.signal, timeout: 60_000 },
      );
      await clock.advance(5);
      expect(await run).toBe(2);
    }
    expect(abortListenerCount(parent.signal)).toBe(0);
    expect(clock.pendingTimers).toBe(0);
    await flush();
    expect(pendingScopes()).toEqual([]);
  });

  it('validates its arguments synchronously', () => {
    const ok = () => 1;
    expect(() => hedge('x' as never, { delayMs: 1 })).toThrow(/`fn`/);
    expect(() => hedge(ok, undefined as never)).toThrow(/options.*delayMs.*undefined/);
    expect(() => hedge(ok, {} as never)).toThrow(/`delayMs`.*undefined/);
    expect(() => hedge(ok, { delayMs: -1 })).toThrow(RangeError);
    expect(() => hedge(ok, { delayMs: 1, maxAttempts: 0 })).toThrow(/`maxAttempts`.*0/);
    expect(() => hedge(ok, { delayMs: 1, maxAttempts: Number.POSITIVE_INFINITY })).toThrow(RangeError);
    expect(() => hedge(ok, { delayMs: 1, retries: 2 } as never)).toThrow(/Unknown option `retries`/);
  });
});
