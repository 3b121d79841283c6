/**
 * Load shedding: decide, per request, whether the event loop is too far behind
 * to take new work (503 + Retry-After).
 *
 * The server depends only on the small {@link Shedder} interface; this
 * implementation is loopsafe's `monitorEventLoop` (lag percentiles and
 * utilisation per window) and `LoadShedder` (the per-request decision, published
 * on the `loopsafe:shed` diagnostics channel), plus a cooldown so a burst of lag
 * sheds for a while rather than for one window.
 */
import { LoadShedder, monitorEventLoop, type EventLoopSample } from 'loopsafe';

export interface ShedDecision {
  readonly shed: boolean;
  /** Seconds a shed client should wait (≥ 1); 0 when not shedding. */
  readonly retryAfterSeconds: number;
}

export interface LoopHealth {
  /** Largest per-window p99 event-loop lag over the last second, resolution subtracted. */
  readonly lagP99Ms: number;
  /** Largest lag over the last second (histogram maximum, or lateness of the monitor's own timer). */
  readonly lagMaxMs: number;
  /** Event-loop utilisation over the last window, 0 to 1. */
  readonly utilization: number;
  readonly shedding: boolean;
}

export interface Shedder {
  /** Cheap: reads the last window's sample. */
  check(): ShedDecision;
  health(): LoopHealth;
  close(): void;
}

export interface LagShedderOptions {
  /** The worst lag of a window above which to shed (one long block is enough). */
  maxLagMs: number;
  /** Shedding continues this long after a window was last over the threshold. */
  cooldownMs: number;
  /** Window length. @defaultValue 100 */
  intervalMs?: number;
}

const WINDOWS_KEPT = 10;

/**
 * Sheds while the last window's worst lag is over `maxLagMs`, and for
 * `cooldownMs` after any window was. The monitor's timer runs in the timers
 * phase, before the poll phase reads new requests, so the first request after
 * a long block already sees the window that contains it. The timer is unref'd.
 *
 * @param options - Threshold, cooldown and window.
 * @returns A running shedder; `close()` stops it.
 */
export function createLagShedder(options: LagShedderOptions): Shedder {
  const intervalMs = options.intervalMs ?? 100;
  const windows: EventLoopSample[] = [];
  let shedUntil = 0;
  // The first window covers the start itself (module loading, compilation, the first connections):
  // its lag says nothing about load, and shedding on it would turn nearly everything away for a whole
  // cooldown on a cold start. Shedding starts with the first real window.
  let warm = false;
  const monitor = monitorEventLoop({
    intervalMs,
    thresholds: { lagMs: options.maxLagMs },
    onSample: (sample) => {
      if (!warm) {
        warm = true;
        return;
      }
      windows.push(sample);
      if (windows.length > WINDOWS_KEPT) windows.shift();
      // `exceeded` goes by the window's worst lag, which includes how late the monitor's own
      // timer ran: a long block counts even before its histogram sample lands.
      if (sample.exceeded.includes('lag')) shedUntil = performance.now() + options.cooldownMs;
    },
  });
  // Utilisation alone never sheds here: a busy but punctual loop is doing its job.
  const shedder = new LoadShedder({ monitor, maxLagMs: options.maxLagMs, maxUtilization: 1 });
  const cooling = (): boolean => performance.now() < shedUntil;
  return {
    check() {
      if (windows.length === 0) return { shed: false, retryAfterSeconds: 0 };
      const decision = shedder.check();
      if (decision.shed)
        return {
          shed: true,
          retryAfterSeconds: Math.max(decision.retryAfterSeconds, Math.ceil(options.cooldownMs / 1000)),
        };
      if (cooling())
        return { shed: true, retryAfterSeconds: Math.max(1, Math.ceil((shedUntil - performance.now()) / 1000)) };
      return { shed: false, retryAfterSeconds: 0 };
    },
    health() {
      let lagP99Ms = 0;
      let lagMaxMs = 0;
      for (const w of windows) {
        lagP99Ms = Math.max(lagP99Ms, w.p99LagMs);
        lagMaxMs = Math.max(lagMaxMs, w.maxLagMs);
      }
      const round = (n: number): number => Math.round(n * 100) / 100;
      return {
        lagP99Ms: round(lagP99Ms),
        lagMaxMs: round(lagMaxMs),
        utilization: round(windows.at(-1)?.utilization ?? 0),
        shedding: cooling() || windows.at(-1)?.exceeded.includes('lag') === true,
      };
    },
    close() {
      shedder[Symbol.dispose]();
      monitor.stop();
    },
  };
}
