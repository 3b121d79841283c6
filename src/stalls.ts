/**
 * `watchStalls`: a watchdog that names the work still running after its
 * deadline (the zombie task that ignored its signal) and scopes without a
 * deadline that have been open too long.
 *
 * @module
 */
import { systemClock, type Clock } from './clock.js';
import type { StallKind, StallMessage } from './channels.js';
import { publishStall } from './internal/publish.js';
import { repeatEvery, type Repetition } from './internal/repeat.js';
import { assertClock, assertDuration, assertFunction, assertInterval, assertOptions } from './internal/validate.js';
import { pendingScopes, type Scope } from './scope.js';

/**
 * Options for {@link watchStalls}.
 *
 * @category Diagnostics
 */
export interface WatchStallsOptions {
  /**
   * How long past its deadline (or past its cancellation) a scope's function
   * may still run before it is reported, in milliseconds.
   * @defaultValue `1_000`
   */
  graceMs?: number | undefined;
  /**
   * How long a scope with no deadline may stay open before it is reported, in
   * milliseconds; `Infinity` never reports them.
   * @defaultValue `60_000`
   */
  noDeadlineMs?: number | undefined;
  /**
   * How often to look, in milliseconds (finite, ≥ 1).
   * @defaultValue `1_000`
   */
  intervalMs?: number | undefined;
  /** Called once per stalled scope. Every report is also published on `loopsafe:stall`. */
  onStall?: ((stall: StallMessage) => void) | undefined;
  /** The clock that paces the checks (each scope's age is read on its own clock). @defaultValue {@link systemClock} */
  clock?: Clock | undefined;
}

/**
 * A running stall watchdog. Its timer is `unref`'d: it never keeps the process alive.
 *
 * @category Diagnostics
 */
export interface StallWatcher extends Disposable {
  /** Looks now, reports new stalls (to `onStall` and `loopsafe:stall`) and returns them. */
  check(): StallMessage[];
  /** Stops watching (idempotent). */
  stop(): void;
  /** `false` once stopped. */
  readonly running: boolean;
}

const WATCH_OPTIONS = new Set(['graceMs', 'noDeadlineMs', 'intervalMs', 'onStall', 'clock']);

class Watcher implements StallWatcher {
  readonly #graceMs: number;
  readonly #noDeadlineMs: number;
  readonly #onStall: ((stall: StallMessage) => void) | undefined;
  /** Scopes already reported: each is reported once. */
  readonly #reported = new WeakSet<Scope>();
  /** When a cancelled scope (whose deadline has not passed) was first seen still running. */
  readonly #cancelledSince = new WeakMap<Scope, number>();
  readonly #repetition: Repetition;

  constructor(
    clock: Clock,
    graceMs: number,
    noDeadlineMs: number,
    intervalMs: number,
    onStall: ((stall: StallMessage) => void) | undefined,
  ) {
    this.#graceMs = graceMs;
    this.#noDeadlineMs = noDeadlineMs;
    this.#onStall = onStall;
    this.#repetition = repeatEvery(clock, intervalMs, () => {
      this.check();
    });
  }

  get running(): boolean {
    return this.#repetition.running;
  }

  check(): StallMessage[] {
    const found: StallMessage[] = [];
    for (const entry of pendingScopes()) {
      const { scope } = entry;
      if (this.#reported.has(scope)) continue;
      const now = scope.clock.now();
      let kind: StallKind | undefined;
      let overdueMs = 0;
      if (entry.overdue) {
        let since = scope.deadline;
        if (!(since <= now)) {
          // Cancelled before its deadline: count from the first time we saw it still running.
          since = this.#cancelledSince.get(scope) ?? now;
          this.#cancelledSince.set(scope, since);
        }
        overdueMs = now - since;
        if (overdueMs > this.#graceMs) kind = 'overdue';
      } else if (scope.deadline === Number.POSITIVE_INFINITY && entry.ageMs > this.#noDeadlineMs) {
        kind = 'no-deadline';
      }
      if (kind === undefined) continue;
      this.#reported.add(scope);
      found.push(
        Object.freeze({
          kind,
          name: entry.name,
          parent: entry.parent,
          ageMs: entry.ageMs,
          overdueMs,
          scope,
          stack: entry.stack,
        }),
      );
    }
    for (const stall of found) {
      publishStall(stall);
      this.#onStall?.(stall);
    }
    return found;
  }

  stop(): void {
    this.#repetition.stop();
  }

  [Symbol.dispose](): void {
    this.stop();
  }
}

/**
 * Starts a watchdog over the open scopes ({@link pendingScopes}). Every
 * `intervalMs` it reports, once per scope:
 *
 * - `'overdue'`: a scope whose deadline passed (or that was cancelled) more
 *   than `graceMs` ago while its function is still running — the task that
 *   ignored its signal. The caller has long had its `TimeoutError`; this is
 *   the work nobody is waiting for, still holding sockets, memory or CPU.
 * - `'no-deadline'`: a scope without a deadline open for more than `noDeadlineMs`.
 *
 * Reports go to `onStall` and to the `loopsafe:stall` diagnostics channel.
 * The watchdog's timer is `unref`'d; dispose it (or `stop()`) when done.
 *
 * @param options - `graceMs`, `noDeadlineMs`, `intervalMs`, `onStall`, `clock`.
 * @returns The watcher: `check()`, `stop()`, `[Symbol.dispose]`.
 * @throws `TypeError`/`RangeError` (synchronously) for a bad option.
 * @category Diagnostics
 * @example
 * ```ts
 * import { watchStalls, withTimeout } from 'loopsafe';
 * import { createManualClock } from 'loopsafe/testing';
 *
 * const clock = createManualClock();
 * using watchdog = watchStalls({
 *   graceMs: 1_000,
 *   intervalMs: 100,
 *   clock,
 *   onStall: (stall) => console.log(`${stall.name} still running ${stall.overdueMs} ms past its deadline`),
 * });
 * // A task that ignores its signal: the caller gets its TimeoutError, the work goes on.
 * const call = withTimeout(100, () => new Promise(() => {}), { name: 'resize-image', clock });
 * call.catch(() => {});
 * await clock.advance(1_200); // 'resize-image still running 1100 ms past its deadline'
 * console.log(watchdog.running); // true
 * ```
 */
export function watchStalls(options?: WatchStallsOptions): StallWatcher {
  assertOptions('watchStalls', options, WATCH_OPTIONS);
  const { graceMs = 1_000, noDeadlineMs = 60_000, intervalMs = 1_000, onStall, clock } = options ?? {};
  assertDuration('graceMs', graceMs);
  assertDuration('noDeadlineMs', noDeadlineMs);
  assertInterval('intervalMs', intervalMs);
  if (onStall !== undefined) assertFunction('onStall', onStall);
  assertClock('clock', clock);
  return new Watcher(clock ?? systemClock, graceMs, noDeadlineMs, intervalMs, onStall);
}
