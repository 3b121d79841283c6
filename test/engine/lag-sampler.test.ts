/** The portable lag sampler the event-loop monitor uses on Bun, Deno and in browsers. */
import { describe, expect, it } from 'vitest';
import { timerLagSource } from '../../src/internal/lag-sampler.js';
import { steppedClock } from '../fixtures/observe.js';

describe('timerLagSource() (the lag sampler on Bun, Deno and browsers)', () => {
  /** Lets `ms` pass, then fires the sampler's pending timer: late by `ms` minus its interval. */
  function fireAfter(stepped: ReturnType<typeof steppedClock>, ms: number): void {
    stepped.setNow(stepped.clock.now() + ms);
    stepped.fireNext();
  }

  it('records how late each timer fired, the interval subtracted, and reports nearest-rank percentiles', () => {
    const stepped = steppedClock();
    const lag = timerLagSource(stepped.clock, 10);
    expect([lag.count, lag.percentile(50), lag.percentile(99), lag.max]).toEqual([0, 0, 0, 0]);
    for (const late of [0, 0, 2, 0, 30, 0, 0, 0, 0, 5]) fireAfter(stepped, 10 + late);
    expect(lag.count).toBe(10);
    expect(lag.percentile(50)).toBe(0);
    expect(lag.percentile(90)).toBe(5);
    expect(lag.percentile(99)).toBe(30);
    expect(lag.max).toBe(30);
    expect(stepped.pending).toHaveLength(1);
  });

  it('reads an early timer (Node fires up to 1 ms early) as no lag, never negative', () => {
    const stepped = steppedClock();
    const lag = timerLagSource(stepped.clock, 10);
    fireAfter(stepped, 9.2);
    expect([lag.count, lag.max, lag.percentile(50)]).toEqual([1, 0, 0]);
  });

  it('measures from when each timer was armed, so one late timer does not shift the next', () => {
    const stepped = steppedClock();
    const lag = timerLagSource(stepped.clock, 10);
    fireAfter(stepped, 110); // a 100 ms block
    fireAfter(stepped, 10); // the next one on time
    expect([lag.percentile(50), lag.max]).toEqual([0, 100]);
  });

  it('reset() starts a new window and stop() clears its timer', () => {
    const stepped = steppedClock();
    const lag = timerLagSource(stepped.clock, 10);
    fireAfter(stepped, 50);
    lag.reset();
    expect([lag.count, lag.max, lag.percentile(99)]).toEqual([0, 0, 0]);
    lag.stop();
    expect(stepped.pending).toHaveLength(0);
  });
});
