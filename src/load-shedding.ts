/**
 * `LoadShedder`: tells a server when to turn work away (503 + `Retry-After`)
 * because the event loop is lagging or saturated.
 *
 * @module
 */
import { monitorEventLoop, type EventLoopMonitor, type EventLoopSample } from './event-loop.js';
import type { OverloadReason } from './channels.js';
import { publishShed } from './internal/publish.js';
import { assertOptions, describe } from './internal/validate.js';

/**
 * Options for {@link LoadShedder}.
 *
 * @category Event loop
 */
export interface LoadShedderOptions {
  /**
   * Where the figures come from: a {@link monitorEventLoop} monitor (or anything with a
   * `snapshot()` returning an {@link EventLoopSample}). It is not stopped with the shedder.
   * @defaultValue a monitor of its own, with 500 ms windows, stopped when the shedder is disposed
   */
  monitor?: Pick<EventLoopMonitor, 'snapshot'> | undefined;
  /**
   * Shed when the last window's worst lag (one long block counts) is above this many milliseconds (`Infinity`: never for lag).
   * @defaultValue `200`
   */
  maxLagMs?: number | undefined;
  /**
   * Shed when the last window's utilisation is above this share, from 0 to 1 (`Infinity`: never for utilisation).
   * @defaultValue `0.98`
   */
  maxUtilization?: number | undefined;
  /**
   * The largest `Retry-After` suggested, in whole seconds: an integer from 1 to
   * 2^31−1 (the largest delta-seconds HTTP caches must hold, and the largest
   * {@link parseRetryAfter} reads). `Infinity` sets no cap of your own: the
   * suggestion is then capped at 2^31−1 seconds, never `Infinity`.
   * @defaultValue `30`
   */
  maxRetryAfterSeconds?: number | undefined;
}

/**
 * What {@link LoadShedder.check} decided. When `shed` is `true`, answer 503
 * with `Retry-After: retryAfterSeconds`.
 *
 * @category Event loop
 */
export type ShedDecision =
  | {
      /** Take the work. */
      readonly shed: false;
      /** The last window's worst event-loop lag, in ms. */
      readonly lagMs: number;
      /** The last window's event-loop utilisation, from 0 to 1. */
      readonly utilization: number;
    }
  | {
      /** Turn the work away (answer 503 with `Retry-After`). */
      readonly shed: true;
      /** The threshold passed (`'lag'` wins when both are). */
      readonly reason: OverloadReason;
      /** The last window's worst event-loop lag, in ms. */
      readonly lagMs: number;
      /** The last window's event-loop utilisation, from 0 to 1. */
      readonly utilization: number;
      /**
       * Seconds the client should wait: how many times over the threshold the loop is, rounded up, from 1 to
       * `maxRetryAfterSeconds` (to 2^31−1 when that is `Infinity`; a threshold of 0 passed counts as infinitely
       * over). Always a valid HTTP delta-seconds: an integer, so `String(retryAfterSeconds)` is the header value
       * and {@link parseRetryAfter} reads it back as `retryAfterSeconds * 1000`.
       */
      readonly retryAfterSeconds: number;
    };

const SHEDDER_OPTIONS = new Set(['monitor', 'maxLagMs', 'maxUtilization', 'maxRetryAfterSeconds']);
/** The largest delta-seconds: 2^31−1, the most `parseRetryAfter` reads and HTTP caches must hold. */
const MAX_DELTA_SECONDS = 2_147_483_647;

function readLimit(name: string, value: unknown, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw new TypeError(`Expected \`${name}\` to be a number, got ${describe(value)}`);
  if (!(value >= 0 && (value <= max || value === Number.POSITIVE_INFINITY))) {
    throw new RangeError(
      `Expected \`${name}\` to be a number from 0 to ${max === Number.POSITIVE_INFINITY ? 'Infinity' : String(max)}, got ${describe(value)}`,
    );
  }
  return value;
}

/** `maxRetryAfterSeconds`: an integer from 1 to 2^31−1; `Infinity` is 2^31−1. */
function readMaxRetryAfter(value: unknown): number {
  if (value === undefined) return 30;
  if (typeof value !== 'number') {
    throw new TypeError(`Expected \`maxRetryAfterSeconds\` to be an integer number of seconds, got ${describe(value)}`);
  }
  if (value === Number.POSITIVE_INFINITY) return MAX_DELTA_SECONDS;
  if (!(Number.isInteger(value) && value >= 1 && value <= MAX_DELTA_SECONDS)) {
    throw new RangeError(
      `Expected \`maxRetryAfterSeconds\` to be an integer from 1 to ${String(MAX_DELTA_SECONDS)} (or Infinity), got ${describe(value)}`,
    );
  }
  return value;
}

/** How many times over `limit` a figure is: `0` when it is not over, `Infinity` over a limit of 0. */
function overload(value: number, limit: number): number {
  if (!(value > limit)) return 0;
  return limit === 0 ? Number.POSITIVE_INFINITY : value / limit;
}

/** A figure of the monitor's sample: a number ≥ 0 (`Infinity` allowed), or a loud error. */
function readFigure(name: string, value: unknown): number {
  if (typeof value !== 'number') {
    throw new TypeError(`Expected \`monitor.snapshot().${name}\` to be a number, got ${describe(value)}`);
  }
  if (!(value >= 0)) {
    throw new RangeError(`Expected \`monitor.snapshot().${name}\` to be a number ≥ 0, got ${describe(value)}`);
  }
  return value;
}

/**
 * Decides, request by request, whether the process is too busy to take more
 * work: the last event-loop window's worst lag above `maxLagMs`, or its
 * utilisation above `maxUtilization`. Cheap to call per request — it reads the
 * monitor's last sample, and measures nothing itself. Each shed decision is
 * published on `loopsafe:shed`. Disposable (stops its own monitor, if it made one).
 *
 * @category Event loop
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { LoadShedder } from 'loopsafe';
 *
 * using shedder = new LoadShedder({ maxLagMs: 200 });
 * const server = createServer((request, response) => {
 *   const decision = shedder.check();
 *   if (decision.shed) {
 *     response.writeHead(503, { 'Retry-After': String(decision.retryAfterSeconds) }).end();
 *     return;
 *   }
 *   response.end('ok');
 * });
 * console.log(shedder.check().shed); // false: an idle loop
 * server.close();
 * ```
 */
export class LoadShedder implements Disposable {
  readonly #monitor: Pick<EventLoopMonitor, 'snapshot'>;
  readonly #owned: EventLoopMonitor | undefined;
  readonly #maxLagMs: number;
  readonly #maxUtilization: number;
  readonly #maxRetryAfterSeconds: number;

  /**
   * @param options - `monitor`, `maxLagMs`, `maxUtilization`, `maxRetryAfterSeconds`.
   * @throws `TypeError`/`RangeError` (synchronously) for a bad option.
   */
  constructor(options?: LoadShedderOptions) {
    assertOptions('LoadShedder', options, SHEDDER_OPTIONS);
    this.#maxLagMs = readLimit('maxLagMs', options?.maxLagMs, 200, Number.POSITIVE_INFINITY);
    this.#maxUtilization = readLimit('maxUtilization', options?.maxUtilization, 0.98, 1);
    this.#maxRetryAfterSeconds = readMaxRetryAfter(options?.maxRetryAfterSeconds);
    const monitor = options?.monitor;
    if (monitor !== undefined && typeof (monitor as Partial<EventLoopMonitor> | null)?.snapshot !== 'function') {
      throw new TypeError(`Expected \`monitor\` to have a snapshot() method, got ${describe(monitor)}`);
    }
    this.#owned = monitor === undefined ? monitorEventLoop({ intervalMs: 500 }) : undefined;
    this.#monitor = monitor ?? (this.#owned as EventLoopMonitor);
  }

  /**
   * Decides whether to shed this request, from the monitor's last sample.
   * A shed decision is published on `loopsafe:shed`.
   *
   * @returns `{ shed: false, … }`, or `{ shed: true, reason, retryAfterSeconds, … }`.
   * @throws `TypeError`/`RangeError` when the monitor's sample is not an object whose `maxLagMs` and
   *   `utilization` are numbers ≥ 0 (`NaN` and negative figures are a broken monitor, not an idle loop).
   */
  check(): ShedDecision {
    const sample: unknown = this.#monitor.snapshot();
    if (typeof sample !== 'object' || sample === null) {
      throw new TypeError(`Expected \`monitor.snapshot()\` to return an event-loop sample, got ${describe(sample)}`);
    }
    // The worst lag of the window, not its p99: one long block is a single lag
    // sample (p99 misses it), yet every request queued behind it waited that long.
    const lagMs = readFigure('maxLagMs', (sample as Partial<EventLoopSample>).maxLagMs);
    const utilization = readFigure('utilization', (sample as Partial<EventLoopSample>).utilization);
    const lagOver = overload(lagMs, this.#maxLagMs);
    const utilizationOver = overload(utilization, this.#maxUtilization);
    const reason: OverloadReason | undefined = lagOver > 0 ? 'lag' : utilizationOver > 0 ? 'utilization' : undefined;
    if (reason === undefined) return { shed: false, lagMs, utilization };
    // An integer from 1 to the cap (itself an integer ≤ 2^31−1): Math.ceil(Infinity) is capped too.
    const retryAfterSeconds = Math.min(
      this.#maxRetryAfterSeconds,
      Math.max(1, Math.ceil(Math.max(lagOver, utilizationOver))),
    );
    publishShed(reason, lagMs, utilization, retryAfterSeconds);
    return { shed: true, reason, lagMs, utilization, retryAfterSeconds };
  }

  /** Stops the shedder's own monitor, if it made one (idempotent). */
  [Symbol.dispose](): void {
    this.#owned?.stop();
  }
}
