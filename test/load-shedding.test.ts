import diagnosticsChannel from 'node:diagnostics_channel';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { EventLoopSample } from '../src/event-loop.js';
import { channelNames, type ShedMessage } from '../src/channels.js';
import { LoadShedder, type ShedDecision } from '../src/load-shedding.js';
import { parseRetryAfter } from '../src/retry-after.js';

/** The largest delta-seconds parseRetryAfter reads: 2^31−1. */
const MAX_DELTA_SECONDS = 2 ** 31 - 1;

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
    using shed = collectShed();
    using shedder = new LoadShedder({ monitor: fakeMonitor(blocked), maxLagMs: 100 });
    expect(shedder.check()).toMatchObject({ shed: true, reason: 'lag', lagMs: 300, retryAfterSeconds: 3 });
    // ShedMessage.lagMs is that worst lag too, not the p99.
    expect(shed.messages).toEqual([{ reason: 'lag', lagMs: 300, utilization: 0.9, retryAfterSeconds: 3 }]);
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
    ['maxLagMs NaN', { maxLagMs: Number.NaN }, RangeError, /`maxLagMs`.*NaN/],
    ['maxUtilization', { maxUtilization: 1.5 }, RangeError, /`maxUtilization`.*1.5/],
    ['maxUtilization type', { maxUtilization: '1' }, TypeError, /`maxUtilization`.*"1"/],
    ['maxRetryAfterSeconds', { maxRetryAfterSeconds: 0.5 }, RangeError, /`maxRetryAfterSeconds`.*0.5/],
    ['maxRetryAfterSeconds 2.5', { maxRetryAfterSeconds: 2.5 }, RangeError, /`maxRetryAfterSeconds`.*2\.5/],
    ['maxRetryAfterSeconds 0', { maxRetryAfterSeconds: 0 }, RangeError, /`maxRetryAfterSeconds`.*got 0/],
    ['maxRetryAfterSeconds -1', { maxRetryAfterSeconds: -1 }, RangeError, /`maxRetryAfterSeconds`.*-1/],
    ['maxRetryAfterSeconds NaN', { maxRetryAfterSeconds: Number.NaN }, RangeError, /`maxRetryAfterSeconds`.*NaN/],
    ['maxRetryAfterSeconds 2^31', { maxRetryAfterSeconds: 2 ** 31 }, RangeError, /`maxRetryAfterSeconds`.*2147483648/],
    [
      'maxRetryAfterSeconds -Infinity',
      { maxRetryAfterSeconds: Number.NEGATIVE_INFINITY },
      RangeError,
      /`maxRetryAfterSeconds`.*-Infinity/,
    ],
    ['maxRetryAfterSeconds type', { maxRetryAfterSeconds: '30' }, TypeError, /`maxRetryAfterSeconds`.*"30"/],
    ['monitor', { monitor: {} }, TypeError, /`monitor`/],
    ['monitor null', { monitor: null }, TypeError, /`monitor`.*null/],
    ['options type', 'fast', TypeError, /LoadShedder.*"fast"/],
  ])('rejects %s', (_name, options, type, message) => {
    expect(() => new LoadShedder(options as never)).toThrow(type);
    expect(() => new LoadShedder(options as never)).toThrow(message);
  });

  it('accepts maxRetryAfterSeconds from 1 to 2^31−1, and Infinity as 2^31−1 (never an unparseable Infinity)', () => {
    const flooded = (maxRetryAfterSeconds: number): ShedDecision =>
      new LoadShedder({ monitor: fakeMonitor(sample(1e300, 0)), maxLagMs: 1e-300, maxRetryAfterSeconds }).check();
    expect(flooded(1)).toMatchObject({ shed: true, retryAfterSeconds: 1 });
    expect(flooded(MAX_DELTA_SECONDS)).toMatchObject({ shed: true, retryAfterSeconds: MAX_DELTA_SECONDS });
    const unbounded = flooded(Number.POSITIVE_INFINITY);
    expect(unbounded).toMatchObject({ shed: true, retryAfterSeconds: MAX_DELTA_SECONDS });
    expect(unbounded.shed && parseRetryAfter(String(unbounded.retryAfterSeconds))).toBe(MAX_DELTA_SECONDS * 1000);
  });

  it('a threshold of 0 counts as infinitely passed: the cap, never Infinity or NaN', () => {
    using shed = collectShed();
    const monitor = fakeMonitor(sample(0.001, 0));
    using shedder = new LoadShedder({ monitor, maxLagMs: 0, maxRetryAfterSeconds: Number.POSITIVE_INFINITY });
    expect(shedder.check()).toMatchObject({ shed: true, reason: 'lag', retryAfterSeconds: MAX_DELTA_SECONDS });
    // 0 lag against 0 is not over it (0/0 is NaN): the decision goes by utilisation alone, 0.99/0.5 → 2 s.
    using byUtilization = new LoadShedder({ monitor: fakeMonitor(sample(0, 0.99)), maxLagMs: 0, maxUtilization: 0.5 });
    expect(byUtilization.check()).toEqual({
      shed: true,
      reason: 'utilization',
      lagMs: 0,
      utilization: 0.99,
      retryAfterSeconds: 2,
    });
    // And the other way round: utilisation 0 against 0, lag 3 times over.
    using byLag = new LoadShedder({ monitor: fakeMonitor(sample(300, 0)), maxLagMs: 100, maxUtilization: 0 });
    expect(byLag.check()).toMatchObject({ shed: true, reason: 'lag', retryAfterSeconds: 3 });
    using idle = new LoadShedder({ monitor: fakeMonitor(sample(0, 0)), maxLagMs: 0, maxUtilization: 0 });
    expect(idle.check()).toEqual({ shed: false, lagMs: 0, utilization: 0 });
    expect(shed.messages.map((message) => message.retryAfterSeconds)).toEqual([MAX_DELTA_SECONDS, 2, 3]);
  });

  it('an infinite lag is capped at maxRetryAfterSeconds', () => {
    using shedder = new LoadShedder({ monitor: fakeMonitor(sample(Number.POSITIVE_INFINITY, 0)), maxLagMs: 200 });
    expect(shedder.check()).toMatchObject({ shed: true, reason: 'lag', retryAfterSeconds: 30 });
  });

  it('check() throws for a monitor whose sample is not figures ≥ 0, naming the figure', () => {
    const cases: [unknown, ErrorConstructor, RegExp][] = [
      [{ ...sample(0, 0.5), maxLagMs: Number.NaN }, RangeError, /`monitor\.snapshot\(\)\.maxLagMs`.*NaN/],
      [{ ...sample(0, 0.5), maxLagMs: -1 }, RangeError, /`monitor\.snapshot\(\)\.maxLagMs`.*-1/],
      [{ ...sample(0, 0.5), maxLagMs: '5' }, TypeError, /`monitor\.snapshot\(\)\.maxLagMs`.*"5"/],
      [{ ...sample(0, 0.5), utilization: Number.NaN }, RangeError, /`monitor\.snapshot\(\)\.utilization`.*NaN/],
      [{ ...sample(0, 0.5), utilization: undefined }, TypeError, /`monitor\.snapshot\(\)\.utilization`.*undefined/],
      [null, TypeError, /`monitor\.snapshot\(\)`.*null/],
      [undefined, TypeError, /`monitor\.snapshot\(\)`.*undefined/],
    ];
    for (const [bad, type, message] of cases) {
      using shedder = new LoadShedder({ monitor: { snapshot: () => bad as EventLoopSample } });
      expect(() => shedder.check()).toThrow(type);
      expect(() => shedder.check()).toThrow(message);
    }
  });

  it('every Retry-After it suggests is a delta-seconds that parseRetryAfter reads back exactly (property)', () => {
    const figure = fc.oneof(
      fc.constant(0),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.double({ min: 0, max: 10_000, noNaN: true }),
      fc.double({ min: 0, noNaN: true }), // up to Number.MAX_VALUE and Infinity
      fc.constant(Number.MIN_VALUE),
      fc.constant(Number.POSITIVE_INFINITY),
    );
    const options = fc.record(
      {
        maxLagMs: fc.oneof(
          fc.constant(0),
          fc.double({ min: 0, noNaN: true }),
          fc.double({ min: 0, max: 500, noNaN: true }),
        ),
        maxUtilization: fc.oneof(
          fc.constant(0),
          fc.double({ min: 0, max: 1, noNaN: true }),
          fc.constant(Number.POSITIVE_INFINITY),
        ),
        maxRetryAfterSeconds: fc.oneof(
          fc.integer({ min: 1, max: MAX_DELTA_SECONDS }),
          fc.integer({ min: 1, max: 60 }),
          fc.constant(MAX_DELTA_SECONDS),
          fc.constant(Number.POSITIVE_INFINITY),
        ),
      },
      { requiredKeys: [] },
    );
    using shed = collectShed();
    fc.assert(
      fc.property(options, fc.array(fc.tuple(figure, figure), { minLength: 1, maxLength: 5 }), (settings, figures) => {
        shed.messages.length = 0;
        const monitor = fakeMonitor(sample(0, 0));
        using shedder = new LoadShedder({ ...settings, monitor });
        const maxLagMs = settings.maxLagMs ?? 200;
        const maxUtilization = settings.maxUtilization ?? 0.98;
        const cap = Math.min(settings.maxRetryAfterSeconds ?? 30, MAX_DELTA_SECONDS);
        const suggested: number[] = [];
        for (const [lagMs, utilization] of figures) {
          monitor.current = { ...sample(lagMs, utilization), p99LagMs: 0 };
          const decision = shedder.check();
          expect(decision.shed).toBe(lagMs > maxLagMs || utilization > maxUtilization);
          if (!decision.shed) continue;
          expect(decision.reason).toBe(lagMs > maxLagMs ? 'lag' : 'utilization');
          const seconds = decision.retryAfterSeconds;
          expect(Number.isInteger(seconds)).toBe(true);
          expect(seconds).toBeGreaterThanOrEqual(1);
          expect(seconds).toBeLessThanOrEqual(cap);
          expect(parseRetryAfter(String(seconds))).toBe(seconds * 1000);
          suggested.push(seconds);
        }
        // The channel carries the same suggestions, each as readable.
        expect(shed.messages.map((message) => message.retryAfterSeconds)).toEqual(suggested);
        for (const message of shed.messages)
          expect(parseRetryAfter(String(message.retryAfterSeconds))).toBe(message.retryAfterSeconds * 1000);
      }),
      { numRuns: 1_000 },
    );
  });
});
