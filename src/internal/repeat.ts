/**
 * Periodic work on a clock — the event-loop monitor and the stall watchdog —
 * with unref'd timers, so it never keeps a process alive.
 *
 * @internal
 * @module
 */
import type { Clock } from '../clock.js';

/** Lets the process exit while `handle` is pending, for clocks whose handles can (Node's can). */
export function unrefTimer(handle: unknown): void {
  (handle as { unref?: () => void } | null)?.unref?.();
}

/** A running repetition, from {@link repeatEvery}. */
export interface Repetition {
  readonly running: boolean;
  /** Stops it and clears its pending timer; idempotent. */
  stop(): void;
}

/**
 * Calls `tick` every `intervalMs` on `clock` until stopped. The next timer is
 * armed before `tick` runs, so a throwing `tick` does not end the repetition.
 */
export function repeatEvery(clock: Clock, intervalMs: number, tick: () => void): Repetition {
  let timer: unknown;
  let running = true;
  const schedule = (): void => {
    timer = clock.setTimeout(() => {
      timer = undefined;
      if (!running) return;
      schedule();
      tick();
    }, intervalMs);
    unrefTimer(timer);
  };
  schedule();
  return {
    get running() {
      return running;
    },
    stop() {
      if (!running) return;
      running = false;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
    },
  };
}
