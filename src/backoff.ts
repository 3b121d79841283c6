/**
 * `backoff`: pure, capped delays for attempt n (the AWS "Exponential Backoff
 * and Jitter" formulas), and `progressiveDelay`: sleep for one of them.
 *
 * @module
 */
import { MAX_TIMER_DELAY_MS, type Clock } from './clock.js';
import { DEFAULT_BACKOFF_MAX_MS } from './internal/backoff-defaults.js';
import {
  assertClock,
  assertDuration,
  assertFunction,
  assertOptions,
  assertSignal,
  describe,
} from './internal/validate.js';
import { safeSleep } from './sleep.js';

/**
 * How a delay is spread to keep clients from retrying in lock-step
 * (see AWS, "Exponential Backoff and Jitter"). With `d = min(maxMs, initialMs·factor^(n−1))`:
 * - `'none'`: `d`;
 * - `'full'`: random in `[0, d)`;
 * - `'equal'`: `d/2` plus random in `[0, d/2)`;
 * - `'decorrelated'`: `min(maxMs, random in [initialMs, previous·3))`.
 *
 * @category Backoff and retry
 */
export type Jitter = 'none' | 'full' | 'equal' | 'decorrelated';

/**
 * Options for {@link backoff} and {@link progressiveDelay}.
 *
 * @category Backoff and retry
 */
export interface BackoffOptions {
  /**
   * The delay of the first attempt, before jitter, in milliseconds.
   * @defaultValue `100`
   */
  initialMs?: number | undefined;
  /**
   * The longest delay, in milliseconds (never more than 2^31−1). Must be ≥ `initialMs`.
   * @defaultValue `30_000`
   */
  maxMs?: number | undefined;
  /**
   * Growth per attempt: a finite number ≥ 1.
   * @defaultValue `2`
   */
  factor?: number | undefined;
  /** @defaultValue `'full'` */
  jitter?: Jitter | undefined;
  /**
   * The source of randomness: returns a number in `[0, 1)`. Inject a seeded one for deterministic delays.
   * @defaultValue `Math.random`
   */
  random?: (() => number) | undefined;
}

/**
 * A delay function made by {@link backoff}: the delay in ms before retrying
 * after attempt `attempt` (counted from 1). Pure given its `random`.
 *
 * `previousMs` is the delay returned for the previous attempt; only the
 * `'decorrelated'` jitter reads it, and without it the un-jittered delay of
 * attempt n−1 is assumed (`initialMs` for attempt 1). Every jitter checks it
 * all the same: a negative, `NaN` or non-number `previousMs` throws.
 *
 * @category Backoff and retry
 */
export interface Backoff {
  (attempt: number, previousMs?: number): number;
  /** The cap every delay respects: `min(maxMs, 2^31−1)`. */
  readonly maxMs: number;
}

/**
 * A delay function for `retry`'s `backoff` option: `(attempt, previousMs?) => ms`.
 * It may carry a `maxMs` property, as {@link backoff}'s functions do, to cap every delay.
 *
 * @category Backoff and retry
 */
export type BackoffFunction = ((attempt: number, previousMs?: number) => number) & {
  /** The cap applied to every delay, if the function has one. */
  readonly maxMs?: number;
};

const BACKOFF_KEYS = ['initialMs', 'maxMs', 'factor', 'jitter', 'random'] as const;
const BACKOFF_OPTIONS = /* @__PURE__ */ new Set<string>(BACKOFF_KEYS);
const JITTERS: ReadonlySet<unknown> = new Set<Jitter>(['none', 'full', 'equal', 'decorrelated']);

const DEFAULT_BACKOFF: Omit<Settings, 'random'> = {
  initialMs: 100,
  maxMs: DEFAULT_BACKOFF_MAX_MS,
  factor: 2,
  jitter: 'full',
};

interface Settings {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly factor: number;
  readonly jitter: Jitter;
  readonly random: () => number;
}

function checkedOptions(fn: string, options: BackoffOptions | undefined): Settings {
  assertOptions(fn, options, BACKOFF_OPTIONS);
  // `undefined` (or a missing key) is the default; `null` is a wrong type, reported like any other.
  const initialMs = options?.initialMs === undefined ? DEFAULT_BACKOFF.initialMs : options.initialMs;
  const maxMs = options?.maxMs === undefined ? DEFAULT_BACKOFF.maxMs : options.maxMs;
  const factor = options?.factor === undefined ? DEFAULT_BACKOFF.factor : options.factor;
  const jitter = options?.jitter === undefined ? DEFAULT_BACKOFF.jitter : options.jitter;
  const random = options?.random === undefined ? Math.random : options.random;
  assertDuration('initialMs', initialMs);
  assertDuration('maxMs', maxMs);
  if (!Number.isFinite(initialMs))
    throw new RangeError(`Expected \`initialMs\` to be finite, got ${describe(initialMs)}`);
  if (initialMs > maxMs) {
    throw new RangeError(
      `Expected \`initialMs\` (${describe(initialMs)}) to be at most \`maxMs\` (${describe(maxMs)})`,
    );
  }
  if (typeof factor !== 'number') throw new TypeError(`Expected \`factor\` to be a number, got ${describe(factor)}`);
  if (!(factor >= 1 && Number.isFinite(factor))) {
    throw new RangeError(`Expected \`factor\` to be a finite number >= 1, got ${describe(factor)}`);
  }
  if (!JITTERS.has(jitter)) {
    throw new TypeError(`Expected \`jitter\` to be 'none', 'full', 'equal' or 'decorrelated', got ${describe(jitter)}`);
  }
  assertFunction('random', random);
  return { initialMs, maxMs, factor, jitter, random };
}

function assertAttempt(attempt: unknown): asserts attempt is number {
  if (typeof attempt !== 'number') throw new TypeError(`Expected \`attempt\` to be a number, got ${describe(attempt)}`);
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RangeError(`Expected \`attempt\` to be an integer >= 1, got ${describe(attempt)}`);
  }
}

/**
 * Makes a delay function for retries: exponential growth from `initialMs` by
 * `factor`, capped by `maxMs`, spread by `jitter`.
 *
 * Every delay is finite and at most `min(maxMs, 2^31−1)` for any attempt —
 * attempt 10,000 included (the exponent overflows to the cap, never to
 * `Infinity` or `NaN`). The function is pure: the same `random` values give the
 * same delays.
 *
 * @param options - `initialMs`, `maxMs`, `factor`, `jitter`, `random`.
 * @returns A {@link Backoff}: `(attempt, previousMs?) => delayMs`, with its cap as `.maxMs`.
 * @throws `TypeError`/`RangeError` (synchronously) for an unknown option, an option of the wrong
 *   type (`null` included), a negative or NaN duration, `initialMs > maxMs`, `factor < 1`, an
 *   unknown jitter; the returned function throws for an attempt that is not an integer ≥ 1, a
 *   `previousMs` that is not a number ≥ 0 (whatever the jitter), or a `random()` outside `[0, 1)`.
 * @category Backoff and retry
 * @example
 * ```ts
 * import { backoff } from 'loopsafe';
 *
 * const exact = backoff({ initialMs: 100, maxMs: 1_000, jitter: 'none' });
 * console.log([1, 2, 3, 4, 5].map((n) => exact(n))); // [100, 200, 400, 800, 1000]
 *
 * const jittered = backoff({ initialMs: 100, random: () => 0.5 }); // 'full' jitter
 * console.log(jittered(3)); // 200: half of 400
 * console.log(exact(10_000)); // 1000: never Infinity
 * ```
 */
export function backoff(options?: BackoffOptions): Backoff {
  const { initialMs, maxMs, factor, jitter, random } = checkedOptions('backoff', options);
  const cap = Math.min(maxMs, MAX_TIMER_DELAY_MS);
  const exponential = (n: number): number => (initialMs === 0 ? 0 : Math.min(cap, initialMs * factor ** (n - 1)));
  const draw = (): number => {
    const r = random();
    if (typeof r !== 'number' || !(r >= 0 && r < 1)) {
      throw new RangeError(`Expected \`random()\` to return a number in [0, 1), got ${describe(r)}`);
    }
    return r;
  };
  const delay = (attempt: number, previousMs?: number): number => {
    // Both arguments are checked whatever the jitter: only 'decorrelated' reads
    // `previousMs`, but a bad one is a caller's bug under every jitter.
    assertAttempt(attempt);
    if (previousMs !== undefined) assertDuration('previousMs', previousMs);
    if (jitter === 'decorrelated') {
      const previous = Math.min(cap, previousMs ?? (attempt === 1 ? initialMs : exponential(attempt - 1)));
      const low = Math.min(initialMs, cap);
      const high = Math.max(low, previous * 3);
      return Math.min(cap, low + draw() * (high - low));
    }
    const d = exponential(attempt);
    if (jitter === 'none') return d;
    if (jitter === 'full') return draw() * d;
    return d / 2 + draw() * (d / 2);
  };
  return Object.defineProperty(delay, 'maxMs', { value: cap, enumerable: true }) as Backoff;
}

/**
 * Options for {@link progressiveDelay}: the {@link BackoffOptions} plus where to sleep.
 *
 * @category Backoff and retry
 */
export interface ProgressiveDelayOptions extends BackoffOptions {
  /** The delay of the previous attempt, a number ≥ 0 (read by the `'decorrelated'` jitter, checked under every jitter). */
  previousMs?: number | undefined;
  /** Aborts the sleep; it rejects with the signal's reason (`===`). */
  signal?: AbortSignal | undefined;
  /** @defaultValue the ambient scope's clock, else the system clock */
  clock?: Clock | undefined;
}

const PROGRESSIVE_OPTIONS = /* @__PURE__ */ optionNames(BACKOFF_KEYS, ['previousMs', 'signal', 'clock']);

/** A set of option names (a call a bundler can drop: an array spread at module level it must keep). */
function optionNames(...groups: readonly (readonly string[])[]): ReadonlySet<string> {
  return new Set(groups.flat());
}

/**
 * Sleeps for attempt `attempt`'s {@link backoff} delay — a "safe progressive
 * delay": abortable through `signal`, and stopped at the ambient scope's
 * deadline (rejecting with that scope's `TimeoutError`) rather than sleeping
 * past it.
 *
 * @param attempt - The attempt that just failed, counted from 1.
 * @param options - The {@link BackoffOptions}, plus `previousMs`, `signal`, `clock`.
 * @returns The delay slept, in milliseconds.
 * @throws `TypeError`/`RangeError` (synchronously) for a bad attempt or option (`previousMs` included, whatever the jitter).
 * @throws the signal's reason, or the ambient scope's {@link TimeoutError} (rejection).
 * @category Backoff and retry
 * @example
 * ```ts
 * import { progressiveDelay } from 'loopsafe';
 * import { createManualClock } from 'loopsafe/testing';
 *
 * const clock = createManualClock();
 * const sleeping = progressiveDelay(3, { initialMs: 100, jitter: 'none', clock });
 * await clock.advance(400);
 * console.log(await sleeping); // 400
 * ```
 */
export function progressiveDelay(attempt: number, options?: ProgressiveDelayOptions): Promise<number> {
  assertAttempt(attempt);
  assertOptions('progressiveDelay', options, PROGRESSIVE_OPTIONS);
  const signal = options?.signal;
  const clock = options?.clock;
  assertSignal('signal', signal);
  assertClock('clock', clock);
  let delayOptions: BackoffOptions | undefined;
  if (options !== undefined) {
    delayOptions = {};
    for (const key of BACKOFF_KEYS)
      if (options[key] !== undefined) Object.assign(delayOptions, { [key]: options[key] });
  }
  const ms = backoff(delayOptions)(attempt, options?.previousMs);
  return safeSleep(ms, { signal, clock }).then(() => ms);
}
