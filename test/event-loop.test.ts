import { AsyncLocalStorage } from 'node:async_hooks';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { monitorEventLoop, yieldToEventLoop, type EventLoopSample } from '../src/event-loop.js';
import { createManualClock } from '../src/testing.js';
import { block, realDelay } from './fixtures/observe.js';

function expectFinite(sample: EventLoopSample): void {
  for (const key of ['at', 'windowMs', 'p50LagMs', 'p99LagMs', 'maxLagMs', 'utilization', 'samples'] as const) {
    expect(Number.isFinite(sample[key]), key).toBe(true);
    expect(sample[key], key).toBeGreaterThanOrEqual(0);
  }
  expect(sample.utilization).toBeLessThanOrEqual(1);
  expect(sample.p50LagMs).toBeLessThanOrEqual(sample.p99LagMs);
  expect(sample.p99LagMs).toBeLessThanOrEqual(sample.maxLagMs);
}

describe('monitorEventLoop()', () => {
  it('closes one window per interval on its clock and passes each sample to onSample', async () => {
    const clock = createManualClock();
    const samples: EventLoopSample[] = [];
    using monitor = monitorEventLoop({ intervalMs: 100, clock, onSample: (sample) => samples.push(sample) });
    await clock.advance(99);
    expect(samples).toHaveLength(0);
    await clock.advance(1);
    await clock.advance(100);
    expect(samples.map((s) => [s.at, s.windowMs])).toEqual([
      [100, 100],
      [200, 100],
    ]);
    expect(monitor.snapshot()).toBe(samples[1]);
    expect(clock.pendingTimers).toBe(1);
  });

  it('never yields NaN or absurd values for an empty window, nor before the first one', async () => {
    const clock = createManualClock();
    const samples: EventLoopSample[] = [];
    using monitor = monitorEventLoop({
      intervalMs: 50,
      resolutionMs: 20,
      clock,
      onSample: (sample) => samples.push(sample),
    });
    const first = monitor.snapshot();
    expect(first).toMatchObject({
      windowMs: 0,
      p50LagMs: 0,
      p99LagMs: 0,
      maxLagMs: 0,
      utilization: 0,
      samples: 0,
      exceeded: [],
    });
    await clock.advance(50); // virtual time: the histogram (real time) has recorded nothing
    expect(samples[0]?.samples).toBe(0);
    expect(samples[0]).toMatchObject({ p50LagMs: 0, p99LagMs: 0, maxLagMs: 0 });
    for (const sample of [first, ...samples]) expectFinite(sample);
  });

  it('marks the thresholds a window passed', async () => {
    const clock = createManualClock();
    const samples: EventLoopSample[] = [];
    using _monitor = monitorEventLoop({
      intervalMs: 1_000,
      resolutionMs: 5,
      clock,
      thresholds: { lagMs: 30, utilization: 0.01 },
      onSample: (s) => samples.push(s),
    });
    await realDelay(15);
    block(60);
    await realDelay(30); // the histogram's timer records the late turn
    await clock.advance(1_000);
    expect(samples[0]?.p99LagMs).toBeGreaterThan(30);
    expect(samples[0]?.exceeded).toEqual(['lag', 'utilization']);
    expectFinite(samples[0] as EventLoopSample);
  });

  it('sees a 100 ms synchronous block (real time)', async () => {
    const samples: EventLoopSample[] = [];
    using _monitor = monitorEventLoop({ intervalMs: 50, onSample: (s) => samples.push(s) });
    await realDelay(60);
    block(100);
    await realDelay(120);
    const worst = Math.max(...samples.map((s) => s.maxLagMs));
    expect(worst).toBeGreaterThanOrEqual(80); // timers may fire a little early; the block is 100 ms
    expect(worst).toBeLessThan(1_000);
    expect(Math.max(...samples.map((s) => s.utilization))).toBeGreaterThan(0.5);
    for (const sample of samples) expectFinite(sample);
  });

  it('subtracts the histogram resolution: an idle loop reads well under the resolution (real time)', async () => {
    const samples: EventLoopSample[] = [];
    using _monitor = monitorEventLoop({ intervalMs: 150, resolutionMs: 20, onSample: (s) => samples.push(s) });
    await realDelay(170);
    expect(samples[0]?.samples).toBeGreaterThan(2);
    expect(samples[0]?.p50LagMs).toBeLessThan(15); // unsubtracted, it would be ≥ 20
  });

  it('stop() and dispose clear its timer and end the samples, idempotently', async () => {
    const clock = createManualClock();
    let count = 0;
    const monitor = monitorEventLoop({ intervalMs: 10, clock, onSample: () => count++ });
    await clock.advance(10);
    monitor.stop();
    monitor[Symbol.dispose]();
    expect(monitor.running).toBe(false);
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(100);
    expect(count).toBe(1);
  });

  it('does not keep the process alive (child process)', async () => {
    const script = fileURLToPath(new URL('./fixtures/monitor-exit.mts', import.meta.url));
    const started = performance.now();
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--import', 'tsx', script], { timeout: 20_000 }, (error, out) => {
        if (error) reject(error);
        else resolve(out);
      });
    });
    expect(stdout.trim()).toBe('running true false true');
    expect(performance.now() - started).toBeLessThan(15_000); // startup alone; a kept-alive timer would mean 60 s
  }, 25_000);

  it.each([
    ['unknown option', { interval: 5 }, TypeError, /Unknown option `interval`/],
    ['intervalMs 0', { intervalMs: 0 }, RangeError, /`intervalMs`.*0/],
    ['intervalMs Infinity', { intervalMs: Number.POSITIVE_INFINITY }, RangeError, /`intervalMs`.*Infinity/],
    ['intervalMs string', { intervalMs: '5' }, TypeError, /`intervalMs`.*"5"/],
    ['resolutionMs 0.5', { resolutionMs: 0.5 }, RangeError, /`resolutionMs`.*0.5/],
    ['thresholds unknown key', { thresholds: { lag: 5 } }, TypeError, /Unknown option `lag`/],
    ['thresholds.lagMs negative', { thresholds: { lagMs: -1 } }, RangeError, /`thresholds.lagMs`.*-1/],
    ['thresholds.utilization 2', { thresholds: { utilization: 2 } }, RangeError, /`thresholds.utilization`.*2/],
    ['onSample', { onSample: 'x' }, TypeError, /`onSample`/],
    ['clock', { clock: {} }, TypeError, /`clock`/],
  ])('rejects %s', (_name, options, type, message) => {
    expect(() => monitorEventLoop(options as never)).toThrow(type);
    expect(() => monitorEventLoop(options as never)).toThrow(message);
  });
});

describe('monitorEventLoop() on Node', () => {
  it('uses the native histogram and measures utilisation', () => {
    using monitor = monitorEventLoop();
    expect([monitor.lagSource, monitor.measuresUtilization]).toEqual(['histogram', true]);
  });
});

describe('yieldToEventLoop()', () => {
  /** From inside a timer callback: schedules a 1 ms timer, blocks past it, then yields with `yielder`. */
  function timerRanAfter(yielder: () => Promise<void>): Promise<boolean> {
    return new Promise((resolve) => {
      setTimeout(() => {
        let ran = false;
        setTimeout(() => {
          ran = true;
        }, 1);
        block(10);
        void yielder().then(() => {
          resolve(ran);
        });
      }, 0);
    });
  }

  it('one setImmediate is not enough: from a timer callback it resumes before the expired timer runs', async () => {
    expect(await timerRanAfter(() => new Promise((resolve) => setImmediate(resolve)))).toBe(false);
  });

  it('resumes only after a full turn: a timer that expired while the loop was blocked runs first', async () => {
    expect(await timerRanAfter(yieldToEventLoop)).toBe(true);
  });

  it('also from the top of a task, and it keeps the async context', async () => {
    const store = new AsyncLocalStorage<string>();
    await store.run('request-1', async () => {
      let ran = false;
      setTimeout(() => {
        ran = true;
      }, 1);
      block(5);
      await yieldToEventLoop();
      expect(ran).toBe(true);
      expect(store.getStore()).toBe('request-1');
    });
  });
});
