import diagnosticsChannel from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import { channelNames, type StallMessage } from '../src/channels.js';
import { captureScopeStacks, timeoutContext, withTimeout } from '../src/scope.js';
import { watchStalls } from '../src/stalls.js';
import { createManualClock } from '../src/testing.js';
import { observe } from './fixtures/observe.js';

/** Work that ignores its signal until the test lets it finish. */
function stubborn(): { promise: Promise<string>; finish(): void } {
  let finish!: () => void;
  const promise = new Promise<string>((resolve) => {
    finish = () => {
      resolve('finally');
    };
  });
  return { promise, finish };
}

describe('watchStalls()', () => {
  it('names a task that ignores its signal, once it runs past its deadline by more than graceMs — once', async () => {
    const clock = createManualClock();
    const order: string[] = [];
    const published: StallMessage[] = [];
    const onMessage = (message: unknown): void => {
      order.push('channel');
      published.push(message as StallMessage);
    };
    diagnosticsChannel.subscribe(channelNames.stall, onMessage);
    const stalls: StallMessage[] = [];
    using _watchdog = watchStalls({
      graceMs: 500,
      intervalMs: 100,
      clock,
      onStall: (stall) => {
        order.push('onStall');
        stalls.push(stall);
      },
    });
    const work = stubborn();
    try {
      const call = observe(withTimeout(100, () => work.promise, { name: 'resize-image', clock }));
      await clock.advance(100);
      expect(call.outcome.status).toBe('rejected'); // the caller has its TimeoutError…
      await clock.advance(500); // …600: 500 ms past the deadline, not more
      expect(stalls).toEqual([]);
      await clock.advance(100); // 700
      expect(stalls).toHaveLength(1);
      expect(stalls[0]).toMatchObject({
        kind: 'overdue',
        name: 'resize-image',
        parent: undefined,
        ageMs: 700,
        overdueMs: 600,
      });
      expect(stalls[0]?.scope.name).toBe('resize-image');
      expect(published).toEqual(stalls);
      expect(order).toEqual(['channel', 'onStall']);
      await clock.advance(1_000);
      expect(stalls).toHaveLength(1); // reported once
    } finally {
      work.finish();
      diagnosticsChannel.unsubscribe(channelNames.stall, onMessage);
    }
  });

  it('says nothing about work that stops at its deadline, or finishes late but within the grace period', async () => {
    const clock = createManualClock();
    const stalls: StallMessage[] = [];
    using _watchdog = watchStalls({ graceMs: 500, intervalMs: 100, clock, onStall: (s) => stalls.push(s) });
    const polite = observe(
      withTimeout(
        100,
        (scope) =>
          new Promise((_resolve, reject) => {
            scope.signal.addEventListener('abort', () => {
              reject(scope.signal.reason);
            });
          }),
        { clock },
      ),
    );
    const late = stubborn();
    const lateCall = observe(withTimeout(100, () => late.promise, { clock }));
    await clock.advance(400);
    late.finish();
    await clock.advance(2_000);
    expect(polite.outcome.status).toBe('rejected');
    expect(lateCall.outcome.status).toBe('rejected');
    expect(stalls).toEqual([]);
  });

  it('reports a cancelled scope whose function keeps running, counting from when it was first seen', async () => {
    const clock = createManualClock();
    const stalls: StallMessage[] = [];
    using watchdog = watchStalls({ graceMs: 200, intervalMs: 100, clock, onStall: (s) => stalls.push(s) });
    const controller = new AbortController();
    const work = stubborn();
    try {
      const call = observe(
        withTimeout(Number.POSITIVE_INFINITY, () => work.promise, { name: 'export', clock, signal: controller.signal }),
      );
      controller.abort(new Error('client went away'));
      await clock.advance(100); // first seen at 100
      expect(call.outcome.status).toBe('rejected');
      await clock.advance(200); // 300: 200 ms, not more
      expect(stalls).toEqual([]);
      await clock.advance(100);
      expect(stalls).toMatchObject([{ kind: 'overdue', name: 'export', overdueMs: 300 }]);
      expect(watchdog.check()).toEqual([]);
    } finally {
      work.finish();
    }
  });

  it('reports a scope without a deadline open longer than noDeadlineMs, with its parent', async () => {
    const clock = createManualClock();
    using watchdog = watchStalls({ noDeadlineMs: 1_000, intervalMs: 10_000, clock });
    const work = stubborn();
    try {
      const outer = withTimeout(
        Number.POSITIVE_INFINITY,
        () => withTimeout(Number.POSITIVE_INFINITY, () => work.promise, { name: 'inner' }),
        { name: 'outer', clock },
      );
      {
        using _short = timeoutContext(Number.POSITIVE_INFINITY, { name: 'disposed', clock });
      }
      await clock.advance(1_000);
      expect(watchdog.check()).toEqual([]);
      await clock.advance(1);
      const found = watchdog.check();
      expect(found.map((s) => [s.kind, s.name, s.parent, s.overdueMs])).toEqual([
        ['no-deadline', 'outer', undefined, 0],
        ['no-deadline', 'inner', 'outer', 0],
      ]);
      work.finish();
      await outer;
    } finally {
      work.finish();
    }
  });

  it('says where a stalled scope was opened while scope stacks are captured', async () => {
    const clock = createManualClock();
    using watchdog = watchStalls({ noDeadlineMs: 10, intervalMs: 10_000, clock });
    const work = stubborn();
    const before = captureScopeStacks(true);
    let outer: Promise<unknown> | undefined;
    try {
      outer = withTimeout(
        Number.POSITIVE_INFINITY,
        function openedInStallsTest() {
          return work.promise;
        },
        { clock },
      );
    } finally {
      captureScopeStacks(before);
    }
    try {
      await clock.advance(11);
      const [stall] = watchdog.check();
      expect(stall?.name).toBe('openedInStallsTest');
      expect(stall?.stack).toContain('stalls.test.ts');
      work.finish();
      await outer;
    } finally {
      work.finish();
    }
  });

  it('stop() and dispose clear its timer, idempotently', async () => {
    const clock = createManualClock();
    const watchdog = watchStalls({ clock });
    expect(clock.pendingTimers).toBe(1);
    watchdog.stop();
    watchdog[Symbol.dispose]();
    expect(watchdog.running).toBe(false);
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(5_000);
    expect(clock.pendingTimers).toBe(0);
  });

  it.each([
    ['unknown option', { grace: 5 }, TypeError, /Unknown option `grace`/],
    ['graceMs', { graceMs: -1 }, RangeError, /`graceMs`.*-1/],
    ['noDeadlineMs', { noDeadlineMs: Number.NaN }, RangeError, /`noDeadlineMs`.*NaN/],
    ['intervalMs', { intervalMs: 0 }, RangeError, /`intervalMs`.*0/],
    ['onStall', { onStall: 1 }, TypeError, /`onStall`/],
    ['clock', { clock: {} }, TypeError, /`clock`/],
  ])('rejects %s', (_name, options, type, message) => {
    expect(() => watchStalls(options as never)).toThrow(type);
    expect(() => watchStalls(options as never)).toThrow(message);
  });
});
