import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoff, progressiveDelay, type Jitter } from '../src/backoff.js';
import { MAX_TIMER_DELAY_MS } from '../src/clock.js';
import { TimeoutError } from '../src/errors.js';
import { withTimeout } from '../src/scope.js';
import { createManualClock } from '../src/testing/manual-clock.js';
import { observe } from './fixtures/observe.js';

/** A small seeded PRNG (mulberry32): the same seed gives the same sequence. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const attempts = fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 20_000 }), fc.constant(10_000));
const settings = fc.record({
  initialMs: fc.integer({ min: 0, max: 5_000 }),
  extraMs: fc.oneof(fc.integer({ min: 0, max: 100_000 }), fc.constant(Number.POSITIVE_INFINITY)),
  factor: fc.double({ min: 1, max: 10, noNaN: true }),
});

/** The un-jittered delay of attempt n: min(maxMs, 2^31−1, initialMs·factor^(n−1)). */
function exponential(initialMs: number, maxMs: number, factor: number, n: number): number {
  return initialMs === 0 ? 0 : Math.min(maxMs, MAX_TIMER_DELAY_MS, initialMs * factor ** (n - 1));
}

describe('backoff()', () => {
  it('uses the documented defaults: 100 ms doubling to 30 s', () => {
    const delay = backoff({ jitter: 'none' });
    expect([1, 2, 3, 4, 5].map((n) => delay(n))).toEqual([100, 200, 400, 800, 1600]);
    expect(delay(9)).toBe(25_600);
    expect(delay(10)).toBe(30_000);
    expect(delay.maxMs).toBe(30_000);
    expect(backoff({ random: () => 0.5 })(3)).toBe(200); // 'full' is the default jitter
  });

  it('computes each AWS formula exactly for a given random value', () => {
    const options = { initialMs: 100, maxMs: 10_000, factor: 2, random: () => 0.25 };
    expect(backoff({ ...options, jitter: 'none' })(4)).toBe(800);
    expect(backoff({ ...options, jitter: 'full' })(4)).toBe(200);
    expect(backoff({ ...options, jitter: 'equal' })(4)).toBe(400 + 100);
    // decorrelated: initialMs + r·(3·previous − initialMs)
    expect(backoff({ ...options, jitter: 'decorrelated' })(4, 1_000)).toBe(100 + 0.25 * 2_900);
    expect(backoff({ ...options, jitter: 'decorrelated' })(1)).toBe(100 + 0.25 * 200); // previous = initialMs
    expect(backoff({ ...options, jitter: 'decorrelated' })(4)).toBe(100 + 0.25 * (1_200 - 100)); // previous = 400
    expect(backoff({ ...options, jitter: 'decorrelated', random: () => 0.99 })(9, 9_000)).toBe(10_000); // capped
  });

  it('keeps every jitter within its bounds for any attempt (property)', () => {
    fc.assert(
      fc.property(settings, attempts, unit, ({ initialMs, extraMs, factor }, n, r) => {
        const maxMs = initialMs + extraMs;
        const d = exponential(initialMs, maxMs, factor, n);
        const make = (jitter: Jitter) => backoff({ initialMs, maxMs, factor, jitter, random: () => r });
        expect(make('none')(n)).toBe(d);
        const full = make('full')(n);
        expect(full).toBeGreaterThanOrEqual(0);
        expect(full).toBeLessThanOrEqual(d);
        const equal = make('equal')(n);
        expect(equal).toBeGreaterThanOrEqual(d / 2);
        expect(equal).toBeLessThanOrEqual(d);
      }),
    );
  });

  it('keeps decorrelated delays in [initialMs, 3·previous), capped, along a whole chain (property)', () => {
    fc.assert(
      fc.property(settings, fc.array(unit, { minLength: 1, maxLength: 60 }), ({ initialMs, extraMs }, draws) => {
        const maxMs = initialMs + extraMs;
        const cap = Math.min(maxMs, MAX_TIMER_DELAY_MS);
        let i = 0;
        const delay = backoff({
          initialMs,
          maxMs,
          jitter: 'decorrelated',
          random: () => draws[i++ % draws.length] ?? 0,
        });
        let previous = initialMs;
        for (let n = 1; n <= draws.length; n++) {
          const next = delay(n, previous);
          expect(next).toBeGreaterThanOrEqual(Math.min(initialMs, cap));
          expect(next).toBeLessThanOrEqual(Math.min(cap, Math.max(initialMs, 3 * previous)));
          previous = next;
        }
      }),
    );
  });

  it('spreads delays uniformly over each formula’s range (seeded distribution)', () => {
    const samples = 20_000;
    const histogram = (jitter: Jitter, low: number, high: number, previousMs?: number): number[] => {
      const delay = backoff({ initialMs: 100, maxMs: 30_000, jitter, random: seeded(7) });
      const bins = Array.from({ length: 10 }, () => 0);
      let sum = 0;
      let outside = 0;
      for (let i = 0; i < samples; i++) {
        const d = delay(4, previousMs);
        if (!(d >= low && d < high)) outside++;
        sum += d;
        const bin = Math.floor(((d - low) / (high - low)) * 10);
        bins[bin] = (bins[bin] ?? 0) + 1;
      }
      expect(outside).toBe(0);
      // The mean sits within 1 % of the range of the midpoint (about 5 standard errors).
      expect(Math.abs(sum / samples - (low + high) / 2)).toBeLessThan((high - low) / 100);
      return bins;
    };
    for (const bins of [
      histogram('full', 0, 800),
      histogram('equal', 400, 800),
      histogram('decorrelated', 100, 3_000, 1_000),
    ]) {
      for (const count of bins) expect(Math.abs(count / samples - 0.1)).toBeLessThan(0.01);
    }
  });

  it('never overflows: attempt 10,000 and beyond stay finite and capped', () => {
    for (const jitter of ['none', 'full', 'equal', 'decorrelated'] as const) {
      const delay = backoff({
        initialMs: 1,
        maxMs: Number.POSITIVE_INFINITY,
        factor: 10,
        jitter,
        random: () => 0.999_999,
      });
      for (const n of [1_000, 10_000, 1e9, Number.MAX_SAFE_INTEGER]) {
        const d = delay(n);
        expect(Number.isFinite(d)).toBe(true);
        expect(d).toBeLessThanOrEqual(MAX_TIMER_DELAY_MS);
        expect(d).toBeGreaterThan(0);
      }
      expect(delay(10_000, Number.POSITIVE_INFINITY)).toBeLessThanOrEqual(MAX_TIMER_DELAY_MS);
    }
    expect(backoff({ initialMs: 0, jitter: 'none' })(10_000)).toBe(0); // 0·∞ would be NaN
    expect(backoff({ jitter: 'none' })(10_000)).toBe(30_000);
  });

  it('throws at the call site for invalid options, naming the option', () => {
    expect(() => backoff({ initialMs: -1 })).toThrow(/`initialMs`.*-1/);
    expect(() => backoff({ initialMs: Number.POSITIVE_INFINITY, maxMs: Number.POSITIVE_INFINITY })).toThrow(RangeError);
    expect(() => backoff({ maxMs: Number.NaN })).toThrow(/`maxMs`.*NaN/);
    expect(() => backoff({ initialMs: 500, maxMs: 100 })).toThrow(/`initialMs` \(500\).*`maxMs` \(100\)/);
    expect(() => backoff({ factor: 0.5 })).toThrow(/`factor`.*0\.5/);
    expect(() => backoff({ factor: Number.POSITIVE_INFINITY })).toThrow(RangeError);
    expect(() => backoff({ factor: '2' as unknown as number })).toThrow(TypeError);
    expect(() => backoff({ jitter: 'half' as Jitter })).toThrow(/`jitter`.*"half"/);
    expect(() => backoff({ random: 0.5 as unknown as () => number })).toThrow(/`random`/);
    expect(() => backoff({ intialMs: 10 } as never)).toThrow(/Unknown option `intialMs`/);
    expect(() => backoff(null as never)).toThrow(TypeError);
  });

  it('rejects a bad attempt number and a random() outside [0, 1)', () => {
    const delay = backoff();
    for (const n of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => delay(n)).toThrow(RangeError);
    expect(() => delay('1' as unknown as number)).toThrow(TypeError);
    expect(() => backoff({ random: () => 1 })(1)).toThrow(/random\(\).*\[0, 1\).*got 1/);
    expect(() => backoff({ random: () => Number.NaN, jitter: 'equal' })(1)).toThrow(RangeError);
    expect(() => backoff({ jitter: 'decorrelated' })(2, -5)).toThrow(/`previousMs`/);
  });
});

const JITTERS: readonly Jitter[] = ['none', 'full', 'equal', 'decorrelated'];
const BAD_PREVIOUS: readonly [unknown, ErrorConstructor, RegExp][] = [
  [-5, RangeError, /`previousMs`.*-5/],
  [-Number.MIN_VALUE, RangeError, /`previousMs`.*-5e-324/],
  [Number.NaN, RangeError, /`previousMs`.*NaN/],
  [Number.NEGATIVE_INFINITY, RangeError, /`previousMs`.*-Infinity/],
  ['100', TypeError, /`previousMs`.*"100"/],
  [null, TypeError, /`previousMs`.*null/],
  [100n, TypeError, /`previousMs`.*100n/],
];

describe('backoff(): every argument checked on every path', () => {
  it.each(JITTERS)('the %s jitter rejects a bad previousMs, whatever the attempt and the other options', (jitter) => {
    for (const options of [{}, { initialMs: 0 }, { initialMs: 0, maxMs: 0 }, { maxMs: Number.POSITIVE_INFINITY }]) {
      const delay = backoff({ ...options, jitter, random: () => 0.5 });
      for (const attempt of [1, 2, 10_000]) {
        for (const [previousMs, type, message] of BAD_PREVIOUS) {
          expect(() => delay(attempt, previousMs as number), `${jitter} ${String(previousMs)}`).toThrow(type);
          expect(() => delay(attempt, previousMs as number), `${jitter} ${String(previousMs)}`).toThrow(message);
        }
      }
    }
  });

  it.each(JITTERS)('the %s jitter accepts every previousMs ≥ 0 (Infinity included) and an omitted one', (jitter) => {
    const delay = backoff({ jitter, random: () => 0.5 });
    for (const previousMs of [undefined, 0, 1.5, 30_000, Number.POSITIVE_INFINITY]) {
      const d = delay(3, previousMs);
      expect(Number.isFinite(d) && d >= 0 && d <= 30_000).toBe(true);
    }
    // Only 'decorrelated' reads it: the other jitters give the same delay whatever it is.
    if (jitter !== 'decorrelated') expect(delay(3, 0)).toBe(delay(3, 1e9));
  });

  it.each(JITTERS)('the %s jitter rejects a bad attempt whatever previousMs is', (jitter) => {
    const delay = backoff({ jitter, random: () => 0.5 });
    for (const previousMs of [undefined, 100, -5, Number.NaN]) {
      for (const attempt of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        expect(() => delay(attempt, previousMs)).toThrow(RangeError);
        expect(() => delay(attempt, previousMs)).toThrow(/`attempt`/);
      }
      expect(() => delay('1' as unknown as number, previousMs)).toThrow(TypeError);
    }
  });

  it.each(JITTERS)('the %s jitter: null for any option is a wrong type, not the default', (jitter) => {
    for (const key of ['initialMs', 'maxMs', 'factor', 'random'] as const) {
      expect(() => backoff({ jitter, [key]: null }), key).toThrow(TypeError);
      expect(() => backoff({ jitter, [key]: null }), key).toThrow(new RegExp(`\`${key}\`.*null`));
    }
    expect(() => backoff({ jitter: null } as never)).toThrow(/`jitter`.*null/);
  });

  it.each(JITTERS)('the %s jitter: each bad option throws, with any combination of good ones', (jitter) => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ initialMs: -1 }, /`initialMs`.*-1/],
      [{ initialMs: Number.NaN }, /`initialMs`.*NaN/],
      [{ maxMs: -1 }, /`maxMs`.*-1/],
      [{ maxMs: '10' }, /`maxMs`.*"10"/],
      [{ factor: 0.5 }, /`factor`.*0\.5/],
      [{ factor: Number.NaN }, /`factor`.*NaN/],
      [{ random: 'x' }, /`random`.*"x"/],
      [{ unknown: 1 }, /Unknown option `unknown`/],
    ];
    for (const good of [{}, { initialMs: 0 }, { maxMs: Number.POSITIVE_INFINITY }, { factor: 1 }]) {
      for (const [option, message] of bad) expect(() => backoff({ jitter, ...good, ...option })).toThrow(message);
    }
  });
});

describe('progressiveDelay(): every argument checked on every path', () => {
  it.each(JITTERS)('the %s jitter rejects a bad previousMs synchronously, starting no timer', (jitter) => {
    const clock = createManualClock();
    for (const [previousMs, type, message] of BAD_PREVIOUS) {
      const call = (): unknown =>
        progressiveDelay(2, { jitter, previousMs: previousMs as number, clock, random: () => 0.5 });
      expect(call, `${jitter} ${String(previousMs)}`).toThrow(type);
      expect(call, `${jitter} ${String(previousMs)}`).toThrow(message);
    }
    expect(clock.pendingTimers).toBe(0);
  });

  it.each(JITTERS)('the %s jitter: a bad attempt or a bad option throws whatever the other arguments are', (jitter) => {
    const clock = createManualClock();
    expect(() => progressiveDelay(0, { jitter, previousMs: 100, clock })).toThrow(/`attempt`.*0/);
    expect(() => progressiveDelay(Number.NaN, { jitter, previousMs: Number.NaN, clock })).toThrow(/`attempt`.*NaN/);
    expect(() => progressiveDelay(1, { jitter, clock, initialMs: null } as never)).toThrow(/`initialMs`.*null/);
    expect(() => progressiveDelay(1, { jitter, clock: null } as never)).toThrow(/`clock`.*null/);
    expect(() => progressiveDelay(1, { jitter, clock, signal: null } as never)).toThrow(/`signal`.*null/);
    expect(() => progressiveDelay(1, { jitter, clock, maxMs: -1 })).toThrow(/`maxMs`.*-1/);
    expect(() => progressiveDelay(1, 'fast' as never)).toThrow(/progressiveDelay.*"fast"/);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('progressiveDelay()', () => {
  it('sleeps exactly that attempt’s delay on the clock', async () => {
    const clock = createManualClock();
    const sleeping = observe(progressiveDelay(3, { initialMs: 100, jitter: 'none', clock }));
    await clock.advance(399);
    expect(sleeping.outcome.status).toBe('pending');
    await clock.advance(1);
    expect(sleeping.outcome).toEqual({ status: 'fulfilled', value: 400 });
    expect(clock.pendingTimers).toBe(0);
  });

  it('is abortable: rejects with the signal’s reason (===) and clears its timer', async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    const reason = new Error('shutdown');
    const sleeping = observe(progressiveDelay(5, { jitter: 'none', clock, signal: controller.signal }));
    await clock.advance(10);
    controller.abort(reason);
    await clock.flush();
    expect(sleeping.outcome).toEqual({ status: 'rejected', reason });
    expect(clock.pendingTimers).toBe(0);
  });

  it('stops at the ambient deadline with that scope’s TimeoutError instead of sleeping past it', async () => {
    const clock = createManualClock();
    const run = observe(withTimeout(250, () => progressiveDelay(4, { jitter: 'none' }), { clock, name: 'request' }));
    await clock.advance(250);
    expect(run.outcome.status).toBe('rejected');
    const reason = (run.outcome as { reason: unknown }).reason;
    expect(reason).toBeInstanceOf(TimeoutError);
    expect((reason as TimeoutError).scopeName).toBe('request');
    expect(clock.now()).toBe(250);
    expect(clock.pendingTimers).toBe(0);
  });

  it('validates its arguments synchronously', () => {
    expect(() => progressiveDelay(0)).toThrow(RangeError);
    expect(() => progressiveDelay(1, { jitter: 'nope' as Jitter })).toThrow(/`jitter`/);
    expect(() => progressiveDelay(1, { signal: 'x' as unknown as AbortSignal })).toThrow(/`signal`/);
    expect(() => progressiveDelay(1, { delay: 5 } as never)).toThrow(/Unknown option `delay`/);
  });
});
