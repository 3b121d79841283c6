/**
 * Where the event-loop monitor's lag figures come from: Node's native
 * histogram, or loopsafe's portable timer sampler (Bun, Deno, browsers).
 *
 * @internal
 * @module
 */
import type { Clock } from '../clock.js';
import type { LoopDelayHistogram } from './platform.js';
import { unrefTimer } from './repeat.js';

/** Lag measurements for one window, in milliseconds, the sampling interval already subtracted. */
export interface LagSource {
  readonly count: number;
  /** `percentile` from 0 to 100; `0` when there are no measurements. */
  percentile(percentile: number): number;
  readonly max: number;
  /** Starts a new window. */
  reset(): void;
  stop(): void;
}

/** A finite, non-negative number of milliseconds, from nanoseconds, minus the resolution. */
function lagMs(nanoseconds: number, resolutionMs: number): number {
  const ms = nanoseconds / 1e6 - resolutionMs;
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}

/** Node's native histogram, read in milliseconds of lag. */
export function histogramSource(histogram: LoopDelayHistogram, resolutionMs: number): LagSource {
  histogram.enable();
  return {
    get count() {
      return histogram.count;
    },
    percentile: (percentile) => (histogram.count > 0 ? lagMs(histogram.percentile(percentile), resolutionMs) : 0),
    get max() {
      return histogram.count > 0 ? lagMs(histogram.max, resolutionMs) : 0;
    },
    reset: () => {
      histogram.reset();
    },
    stop: () => {
      histogram.disable();
    },
  };
}

/**
 * The portable sampler: a timer every `resolutionMs` on `clock`, recording how
 * late each one fired. Lag is a real-time effect, so the monitor runs this on
 * the system clock; tests drive it with a clock of their own.
 *
 * @internal
 */
export function timerLagSource(clock: Clock, resolutionMs: number): LagSource {
  let samples: number[] = [];
  let max = 0;
  let armedAt = 0;
  let timer: unknown;
  const fire = (): void => {
    const late = clock.now() - armedAt - resolutionMs;
    const lag = late > 0 ? late : 0;
    samples.push(lag);
    if (lag > max) max = lag;
    arm();
  };
  const arm = (): void => {
    armedAt = clock.now();
    timer = clock.setTimeout(fire, resolutionMs);
    unrefTimer(timer);
  };
  arm();
  return {
    get count() {
      return samples.length;
    },
    percentile: (percentile) => {
      if (samples.length === 0) return 0;
      samples.sort((a, b) => a - b); // a window's few hundred samples, read twice per window
      // Nearest rank, as HdrHistogram reports it.
      const rank = Math.max(1, Math.ceil((percentile / 100) * samples.length));
      return samples[rank - 1] ?? 0;
    },
    get max() {
      return max;
    },
    reset: () => {
      samples = [];
      max = 0;
    },
    stop: () => {
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
    },
  };
}
