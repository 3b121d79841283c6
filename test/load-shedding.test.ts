import diagnosticsChannel from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import type { EventLoopSample } from '../src/event-loop.js';
import { channelNames, type ShedMessage } from '../src/channels.js';
import { LoadShedder } from '../src/load-shedding.js';

function sample(p99LagMs: number, utilization: number): EventLoopSample {
  return { at: 0, windowMs: 500, p50LagMs: 0, p99LagMs, maxLagMs: p99LagMs, utilization, samples: 50, exceeded: [] };
}

/** A monitor stand-in whose last sample the test sets. */
function fakeMonitor(initial: EventLoopSample): { current: EventLoopSample; snapshot(): EventLoopSample } {
  return {
    current: initial,
    snapshot() {
      return this.current;
    },
  };
}

function collectShed(): { messages: ShedMessage[]; [Symbol.dispose](): void } {
  const messages: ShedMessage[] = [];
  const onMessage = (message: unknown): void => {
    messages.push(message as ShedMessage);
  };
  diagnosticsChannel.subscribe(channelNames.shed, onMessage);
  return { messages, [Symbol.dispose]: () => diagnosticsChannel.unsubscribe(channelNames.shed, onMessage) };
}

describe('LoadShedder', () => {
  it('lets work through while lag and utilisation are under their thresholds', () => {
    using shed = collectShed();
    using shedder = new LoadShedder({ monitor: fakeMonitor(sample(199, 0.97)), maxLagMs: 200, maxUtilization: 0.98 });
    expect(shedder.check()).toEqual({ shed: false, lagMs: 199, utilization: 0.97 });
    expect(shed.messages).toEqual([]);
  });

  it('sheds on lag, suggesting a Retry-After that grows with the overload, and publishes loopsafe:shed', () => {
    using shed = collectShed();
    const monitor = fakeMonitor(sample(250, 0.5));
    using shedder = new LoadShedder({ monitor, maxLagMs: 200 });
    expect(shedder.check()).toEqual({ shed: true, reason: 'lag', lagMs: 250, utilization: 0.5, retryAfterSeconds: 2 });
    monitor.current = sample(1_000, 0.5);
    expect(shedder.check()).toMatchObject({ shed: true, retryAfterSeconds: 5 });
    expect(shed.messages).toEqual([
      { reason: 'lag', lagMs: 250, utilization: 0.5, retryAfterSeconds: 2 },
      { reason: 'lag', lagMs: 1_000, utilization: 0.5, retryAfterSeconds: 5 },
    ]);
  });

  it('sheds on a single long block that the window’s p99 misses (its worst lag counts)', () => {
    // A 300 ms block is one late lag sample: p99 stays low, the maximum does not.
    const blocked: EventLoopSample = { ...sample(0.6, 0.9), maxLagMs: 300 };
    using shedder = new LoadShedder({ monitor: fakeMonitor(blocked), maxLagMs: 100 });
    expect(shedder.check()).toMatchObject({ shed: true, reason: 'lag', lagMs: 300, retryAfterSeconds: 3 });
  });

  it('sheds on utilisation; lag wins when both are passed; Retry-After is capped', () => {
    const monitor = fakeMonitor(sample(10, 0.99));
    using shedder = new LoadShedder({ monitor, maxLagMs: 200, maxUtilization: 0.9, maxRetryAfterSeconds: 3 });
    expect(shedder.check()).toMatchObject({ shed: true, reason: 'utilization', retryAfterSeconds: 2 });
    monitor.current = sample(10_000, 0.99);
    expect(shedder.check()).toMatchObject({ shed: true, reason: 'lag', retryAfterSeconds: 3 });
  });

  it('Infinity disables a threshold', () => {
    using shedder = new LoadShedder({
      monitor: fakeMonitor(sample(1e6, 1)),
      maxLagMs: Number.POSITIVE_INFINITY,
      maxUtilization: Number.POSITIVE_INFINITY,
    });
    expect(shedder.check().shed).toBe(false);
  });

  it('with a monitor of its own, an idle process is not shed before or after its first window', async () => {
    using shedder = new LoadShedder();
    expect(shedder.check().shed).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 520));
    expect(shedder.check().shed).toBe(false);
  });

  it.each([
    ['unknown option', { maxLag: 1 }, TypeError, /Unknown option `maxLag`/],
    ['maxLagMs', { maxLagMs: -1 }, RangeError, /`maxLagMs`.*-1/],
    ['maxUtilization', { maxUtilization: 1.5 }, RangeError, /`maxUtilization`.*1.5/],
    ['maxUtilization type', { maxUtilization: '1' }, TypeError, /`maxUtilization`.*"1"/],
    ['maxRetryAfterSeconds', { maxRetryAfterSeconds: 0.5 }, RangeError, /`maxRetryAfterSeconds`.*0.5/],
    ['monitor', { monitor: {} }, TypeError, /`monitor`/],
  ])('rejects %s', (_name, options, type, message) => {
    expect(() => new LoadShedder(options as never)).toThrow(type);
    expect(() => new LoadShedder(options as never)).toThrow(message);
  });
});
