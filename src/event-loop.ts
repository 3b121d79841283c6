/**
 * Event-loop health: `monitorEventLoop` (lag percentiles, worst lag and
 * utilisation per interval) and `yieldToEventLoop` (a full macrotask turn).
 *
 * @module
 */
import { systemClock, type Clock } from './clock.js';
import type { OverloadReason } from './channels.js';
import { histogramSource, timerLagSource, type LagSource } from './internal/lag-sampler.js';
import { loopUtilization, nativeLoopDelay, runSoon } from './internal/platform.js';
import { repeatEvery, type Repetition } from './internal/repeat.js';
import { assertClock, assertFunction, assertInterval, assertOptions, describe } from './internal/validate.js';

/**
 * Event-loop statistics for one window, from {@link monitorEventLoop}.
 * Every number is finite: a window with no measurement reports `0`, never `NaN`.
 *
 * @category Event loop
 */
export interface EventLoopSample {
  /** Clock time at which the window closed (or the snapshot was taken). */
  readonly at: number;
  /** The window's actual length, in milliseconds. */
  readonly windowMs: number;
  /** Median event-loop lag in the window, in milliseconds, the sampling resolution subtracted. */
  readonly p50LagMs: number;
  /** 99th-percentile lag, in milliseconds. */
  readonly p99LagMs: number;
  /**
   * Largest lag seen, in milliseconds: the sampler's maximum, or how late the
   * monitor's own timer fired, whichever is larger (so a block that straddles
   * the window's end is still seen).
   */
  readonly maxLagMs: number;
  /** Event-loop utilisation over the window (the share of time the loop was busy), from 0 to 1; `0` where it is not measured (see {@link EventLoopMonitor.measuresUtilization}). */
  readonly utilization: number;
  /** Lag measurements in the window. */
  readonly samples: number;
  /** The thresholds passed in this window (`maxLagMs > thresholds.lagMs`, `utilization > thresholds.utilization`): one long block counts. */
  readonly exceeded: readonly OverloadReason[];
}

/**
 * Options for {@link monitorEventLoop}.
 *
 * @category Event loop
 */
export interface EventLoopMonitorOptions {
  /**
   * Length of each window, in milliseconds (≥ 1, finite).
   * @defaultValue `1_000`
   */
  intervalMs?: number | undefined;
  /**
   * How often the lag sampler samples the loop, in milliseconds (an integer ≥ 1).
   * Subtracted from every lag figure: an idle loop reports ~0 lag.
   * @defaultValue `10`
   */
  resolutionMs?: number | undefined;
  /**
   * Levels above which a window is marked in {@link EventLoopSample.exceeded}:
   * `lagMs` (compared with the window's worst lag, `maxLagMs`, not `p99LagMs`:
   * one long block is enough) and `utilization` (0 to 1).
   * @defaultValue none
   */
  thresholds?: EventLoopThresholds | undefined;
  /** Called with each window's sample, when the window closes. */
  onSample?: ((sample: EventLoopSample) => void) | undefined;
  /** The clock that paces the windows. @defaultValue {@link systemClock} */
  clock?: Clock | undefined;
}

/**
 * Thresholds for {@link monitorEventLoop}.
 *
 * @category Event loop
 */
export interface EventLoopThresholds {
  /** Worst lag of a window, in milliseconds, above which the loop counts as lagging (one long block is enough). */
  lagMs?: number | undefined;
  /** Utilisation (0 to 1) above which the loop counts as saturated. */
  utilization?: number | undefined;
}

/**
 * A running event-loop monitor. Its timers are `unref`'d: it never keeps the
 * process alive. Dispose it (or call `stop()`) to release its sampler.
 *
 * @category Event loop
 */
export interface EventLoopMonitor extends Disposable {
  /** The last complete window's sample; before the first one closes, an empty sample (zeros, `windowMs: 0`). */
  snapshot(): EventLoopSample;
  /** Stops sampling (idempotent). */
  stop(): void;
  /** `false` once stopped. */
  readonly running: boolean;
  /**
   * Where the lag figures come from: `'histogram'`, Node's native
   * `monitorEventLoopDelay`; `'timer'`, loopsafe's own sampler (a timer every
   * `resolutionMs` that records how late it fired) on Bun, Deno and browsers,
   * whose histograms do not measure the same thing.
   */
  readonly lagSource: 'histogram' | 'timer';
  /**
   * Whether utilisation is measured (`performance.eventLoopUtilization`, Node
   * only). Where it is not, every sample reports `utilization: 0`, so a
   * `thresholds.utilization` never trips and only lag marks a window.
   */
  readonly measuresUtilization: boolean;
}

const NO_REASONS: readonly OverloadReason[] = /* @__PURE__ */ Object.freeze([]);
const MONITOR_OPTIONS = new Set(['intervalMs', 'resolutionMs', 'thresholds', 'onSample', 'clock']);
const THRESHOLD_KEYS = new Set(['lagMs', 'utilization']);

function readThresholds(value: unknown): { lagMs: number; utilization: number } {
  if (value === undefined) return { lagMs: Number.POSITIVE_INFINITY, utilization: Number.POSITIVE_INFINITY };
  assertOptions('monitorEventLoop thresholds', value, THRESHOLD_KEYS);
  const { lagMs = Number.POSITIVE_INFINITY, utilization = Number.POSITIVE_INFINITY } = value as EventLoopThresholds;
  if (typeof lagMs !== 'number')
    throw new TypeError(`Expected \`thresholds.lagMs\` to be a number of milliseconds, got ${describe(lagMs)}`);
  if (!(lagMs >= 0))
    throw new RangeError(
      `Expected \`thresholds.lagMs\` to be a non-negative number of milliseconds, got ${describe(lagMs)}`,
    );
  if (typeof utilization !== 'number')
    throw new TypeError(`Expected \`thresholds.utilization\` to be a number from 0 to 1, got ${describe(utilization)}`);
  if (!(utilization >= 0 && (utilization <= 1 || utilization === Number.POSITIVE_INFINITY))) {
    throw new RangeError(
      `Expected \`thresholds.utilization\` to be a number from 0 to 1, got ${describe(utilization)}`,
    );
  }
  return { lagMs, utilization };
}

class Monitor implements EventLoopMonitor {
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #thresholds: { lagMs: number; utilization: number };
  readonly #onSample: ((sample: EventLoopSample) => void) | undefined;
  readonly #lag: LagSource;
  readonly #utilization: (() => number) | undefined;
  readonly lagSource: 'histogram' | 'timer';
  readonly measuresUtilization: boolean;
  #windowStart: number;
  #last: EventLoopSample | undefined = undefined;
  readonly #repetition: Repetition;

  constructor(
    clock: Clock,
    intervalMs: number,
    resolutionMs: number,
    thresholds: { lagMs: number; utilization: number },
    onSample: ((sample: EventLoopSample) => void) | undefined,
  ) {
    this.#clock = clock;
    this.#intervalMs = intervalMs;
    this.#thresholds = thresholds;
    this.#onSample = onSample;
    this.#lag =
      nativeLoopDelay === undefined
        ? timerLagSource(systemClock, resolutionMs)
        : histogramSource(nativeLoopDelay(resolutionMs), resolutionMs);
    this.lagSource = nativeLoopDelay === undefined ? 'timer' : 'histogram';
    this.#utilization = loopUtilization?.();
    this.measuresUtilization = this.#utilization !== undefined;
    this.#windowStart = clock.now();
    this.#repetition = repeatEvery(clock, intervalMs, () => {
      const sample = this.#measure();
      this.#last = sample;
      this.#onSample?.(sample);
    });
  }

  get running(): boolean {
    return this.#repetition.running;
  }

  /** Closes the window: its statistics, and a new window starts. */
  #measure(): EventLoopSample {
    const now = this.#clock.now();
    const windowMs = Math.max(0, now - this.#windowStart);
    const lag = this.#lag;
    const samples = lag.count;
    const p50 = lag.percentile(50);
    const p99 = lag.percentile(99);
    // Our own timer is late by as long as the loop was held up past the window's end.
    const max = Math.max(lag.max, windowMs - this.#intervalMs);
    const busy = this.#utilization?.() ?? 0;
    const utilization = Number.isFinite(busy) ? Math.min(1, Math.max(0, busy)) : 0;
    const exceeded: OverloadReason[] = [];
    if (max > this.#thresholds.lagMs) exceeded.push('lag');
    if (utilization > this.#thresholds.utilization) exceeded.push('utilization');
    lag.reset();
    this.#windowStart = now;
    return Object.freeze({
      at: now,
      windowMs,
      p50LagMs: p50,
      p99LagMs: p99,
      maxLagMs: max,
      utilization,
      samples,
      exceeded: exceeded.length === 0 ? NO_REASONS : Object.freeze(exceeded),
    });
  }

  snapshot(): EventLoopSample {
    return (
      this.#last ??
      Object.freeze({
        at: this.#clock.now(),
        windowMs: 0,
        p50LagMs: 0,
        p99LagMs: 0,
        maxLagMs: 0,
        utilization: 0,
        samples: 0,
        exceeded: NO_REASONS,
      })
    );
  }

  stop(): void {
    if (!this.#repetition.running) return;
    this.#repetition.stop();
    this.#lag.stop();
  }

  [Symbol.dispose](): void {
    this.stop();
  }
}

/**
 * Starts measuring event-loop health, one window every `intervalMs`: lag
 * percentiles and the worst lag (from `perf_hooks.monitorEventLoopDelay`, with
 * the histogram's resolution subtracted so an idle loop reads ~0 ms) and
 * utilisation (from `performance.eventLoopUtilization` deltas). A window
 * without measurements reports zeros, never `NaN`. A synchronous block is seen
 * even when it holds up the window's own timer: the timer's lateness counts as
 * lag (in `maxLagMs`). `thresholds.lagMs` is compared with that worst lag,
 * `maxLagMs`, not with `p99LagMs`.
 *
 * On Bun, Deno and in browsers the lag comes from loopsafe's own sampler (a
 * timer every `resolutionMs` that records how late it fired:
 * {@link EventLoopMonitor.lagSource} is `'timer'`), and utilisation is not
 * measured ({@link EventLoopMonitor.measuresUtilization} is `false`, every
 * sample reports `0`).
 *
 * The monitor's timers are `unref`'d, so it never keeps the process alive.
 *
 * @param options - `intervalMs`, `resolutionMs`, `thresholds`, `onSample`, `clock`.
 * @returns The running monitor: `snapshot()`, `stop()`, `[Symbol.dispose]`.
 * @throws `TypeError`/`RangeError` (synchronously) for a bad option.
 * @category Event loop
 * @example
 * ```ts
 * import { monitorEventLoop } from 'loopsafe';
 *
 * using monitor = monitorEventLoop({
 *   intervalMs: 20,
 *   thresholds: { lagMs: 100, utilization: 0.9 },
 *   onSample: (sample) => {
 *     if (sample.exceeded.length > 0) console.log('event loop overloaded', sample);
 *   },
 * });
 * await new Promise((resolve) => setTimeout(resolve, 50));
 * const { p99LagMs, utilization } = monitor.snapshot();
 * console.log(p99LagMs >= 0 && utilization >= 0 && utilization <= 1); // true
 * ```
 */
export function monitorEventLoop(options?: EventLoopMonitorOptions): EventLoopMonitor {
  assertOptions('monitorEventLoop', options, MONITOR_OPTIONS);
  const { intervalMs = 1_000, resolutionMs = 10, thresholds, onSample, clock } = options ?? {};
  assertInterval('intervalMs', intervalMs);
  if (typeof resolutionMs !== 'number')
    throw new TypeError(
      `Expected \`resolutionMs\` to be an integer number of milliseconds, got ${describe(resolutionMs)}`,
    );
  if (!(Number.isInteger(resolutionMs) && resolutionMs >= 1)) {
    throw new RangeError(
      `Expected \`resolutionMs\` to be an integer number of milliseconds ≥ 1, got ${describe(resolutionMs)}`,
    );
  }
  const limits = readThresholds(thresholds);
  if (onSample !== undefined) assertFunction('onSample', onSample);
  assertClock('clock', clock);
  return new Monitor(clock ?? systemClock, intervalMs, resolutionMs, limits, onSample);
}

/**
 * Resolves after a full turn of the event loop: timers that fell due while the
 * loop was blocked run before it resumes. (One `setImmediate` is not enough —
 * called from a timer, it resumes in the same loop iteration, before any other
 * timer runs; this waits for the check phase of the *next* iteration.) Use it
 * between chunks of CPU-bound work so deadlines, I/O and other requests get
 * their turn. It does not depend on any global, so fake timers do not stop it.
 *
 * @returns A promise that fulfils with `undefined` after the turn.
 * @category Event loop
 * @example
 * ```ts
 * import { yieldToEventLoop } from 'loopsafe';
 *
 * let timerRan = false;
 * setTimeout(() => { timerRan = true; }, 0);
 * const until = performance.now() + 5;
 * while (performance.now() < until); // a blocked loop: the timer is due but cannot run
 * await yieldToEventLoop();
 * console.log(timerRan); // true
 * ```
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise<void>((resolve) => {
    runSoon(() => {
      runSoon(resolve);
    });
  });
}
