/**
 * `CircuitBreaker`: stop calling a dependency that keeps failing, give it
 * `openMs` to recover, then let a few trial calls decide.
 *
 * @module
 */
import type { CircuitState, CircuitTransitionReason } from './channels.js';
import { systemClock, type Clock } from './clock.js';
import { BrokenCircuitError } from './errors.js';
import { ambientScope, openScope, runScoped, type ScopeNode } from './internal/engine/index.js';
import { publishCircuit } from './internal/publish.js';
import { createDeferred, rejectedAtCaller } from './internal/stacks.js';
import {
  assertClock,
  assertCount,
  assertDuration,
  assertFunction,
  assertOptions,
  assertSignal,
  describe,
  isPromiseLike,
} from './internal/validate.js';

/**
 * Options for {@link CircuitBreaker}. Give `failureThreshold`, `failureRate`,
 * or both (the breaker opens on whichever is reached first).
 *
 * @category Resilience policies
 */
export interface CircuitBreakerOptions {
  /** Names the breaker in its {@link BrokenCircuitError}s and on `loopsafe:circuit`. */
  name: string;
  /**
   * Open after this many counted failures in a row (a success resets the run): an integer ≥ 1, or `Infinity`.
   * @defaultValue `5`, or `Infinity` when `failureRate` is given
   */
  failureThreshold?: number | undefined;
  /**
   * Open when the share of counted failures among the calls of the last `windowMs` reaches this
   * (a number in (0, 1]), once at least `minimumCalls` calls were counted in the window. Checked
   * each time a failure is counted (a success never opens the breaker).
   * @defaultValue none: consecutive failures only
   */
  failureRate?: number | undefined;
  /**
   * The fewest calls in the window for `failureRate` to apply: an integer ≥ 1.
   * @defaultValue `10`
   */
  minimumCalls?: number | undefined;
  /**
   * The window `failureRate` looks at, in milliseconds (finite, > 0). It is kept as 10 buckets of
   * `windowMs / 10`, so a call stays counted for between 0.9 × and 1 × `windowMs`.
   * @defaultValue `10_000`
   */
  windowMs?: number | undefined;
  /**
   * How long the breaker stays open before it lets trial calls through, in milliseconds
   * (`Infinity`: until {@link CircuitBreaker.reset}).
   * @defaultValue `10_000`
   */
  openMs?: number | undefined;
  /**
   * How many trial calls may run at once while half-open: an integer ≥ 1. The others are
   * turned away with a {@link BrokenCircuitError} (`retryAfterMs: 0`).
   * @defaultValue `1`
   */
  halfOpenMaxCalls?: number | undefined;
  /**
   * Decides whether a failure counts against the dependency (`false`: the error passes through
   * and counts neither as a failure nor as a success — a 404, a validation error). Never asked
   * about a cancellation from outside, which never counts. If it throws, `run` rejects with that error.
   * @defaultValue every failure counts
   */
  shouldCount?: ((error: unknown) => boolean) | undefined;
  /**
   * The clock `openMs` and `windowMs` are measured on.
   * @defaultValue {@link systemClock}
   */
  clock?: Clock | undefined;
}

/**
 * Options for {@link CircuitBreaker.run}.
 *
 * @category Resilience policies
 */
export interface CircuitRunOptions {
  /** Cancels the call: `run` rejects with its reason (`===`), and the call counts for nothing. */
  signal?: AbortSignal | undefined;
}

/**
 * What the work passed to {@link CircuitBreaker.run} receives.
 *
 * @category Resilience policies
 */
export interface CircuitContext {
  /**
   * Aborts when the caller's `signal` aborts or the ambient scope ends (its deadline, its
   * cancellation). Made on first read: work that never reads it pays nothing. When nothing can
   * cancel the call (no ambient scope, no `signal`), each read gives a signal that never aborts.
   */
  readonly signal: AbortSignal;
}

const BREAKER_OPTIONS = /* @__PURE__ */ new Set([
  'name',
  'failureThreshold',
  'failureRate',
  'minimumCalls',
  'windowMs',
  'openMs',
  'halfOpenMaxCalls',
  'shouldCount',
  'clock',
]);
const RUN_OPTIONS = /* @__PURE__ */ new Set(['signal']);

/** Buckets in a failure-rate window. */
const BUCKETS = 10;

/**
 * The calls and failures of the last `windowMs`, in a ring of {@link BUCKETS}
 * buckets of `windowMs / BUCKETS`: recording a call and reading the totals are
 * O(1) (at most {@link BUCKETS} stale buckets are cleared on the way).
 */
class FailureWindow {
  readonly #bucketMs: number;
  /** Per slot (bucket index `i` lives in slot `i mod BUCKETS`): its calls and failures. */
  readonly #calls = new Float64Array(BUCKETS);
  readonly #failures = new Float64Array(BUCKETS);
  /** The newest bucket index seen; every slot holds a bucket in `(latest - BUCKETS, latest]` or is empty. */
  #latest = Number.NEGATIVE_INFINITY;
  /** The slot of bucket `#latest`. */
  #latestSlot = 0;
  /** Sums over the slots. */
  calls = 0;
  failures = 0;

  constructor(windowMs: number) {
    this.#bucketMs = windowMs / BUCKETS;
  }

  /** Counts one call at `now`; the totals then cover the window ending at `now`. */
  record(now: number, failed: boolean): void {
    const index = Math.floor(now / this.#bucketMs);
    if (index > this.#latest) this.#advance(index);
    // A clock that went back counts in the newest bucket.
    const slot = this.#latestSlot;
    this.#calls[slot] = (this.#calls[slot] ?? 0) + 1;
    this.calls++;
    if (failed) {
      this.#failures[slot] = (this.#failures[slot] ?? 0) + 1;
      this.failures++;
    }
  }

  clear(): void {
    this.#calls.fill(0);
    this.#failures.fill(0);
    this.#latest = Number.NEGATIVE_INFINITY;
    this.#latestSlot = 0;
    this.calls = 0;
    this.failures = 0;
  }

  /** Moves the window's end to bucket `index`, emptying the slots of buckets that fell out of it. */
  #advance(index: number): void {
    const steps = Math.min(index - this.#latest, BUCKETS);
    for (let step = steps - 1; step >= 0; step--) {
      const slot = this.#slot(index - step);
      this.calls -= this.#calls[slot] ?? 0;
      this.failures -= this.#failures[slot] ?? 0;
      this.#calls[slot] = 0;
      this.#failures[slot] = 0;
    }
    this.#latest = index;
    this.#latestSlot = this.#slot(index);
  }

  #slot(index: number): number {
    return ((index % BUCKETS) + BUCKETS) % BUCKETS;
  }
}

/** The context handed to work in a call scope: its signal is the scope's, made on first read. */
class Call implements CircuitContext {
  readonly #scope: ScopeNode;
  constructor(scope: ScopeNode) {
    this.#scope = scope;
  }
  get signal(): AbortSignal {
    return this.#scope.signal;
  }
}

/**
 * The context handed to work that nothing can cancel (no ambient scope, no
 * signal), shared by every such call so the hot path allocates nothing for it:
 * each read of `signal` makes a signal that never aborts (a listener added to
 * it goes with it), and none is made unless it is read.
 */
const UNCANCELLABLE: CircuitContext = /* @__PURE__ */ Object.freeze({
  get signal(): AbortSignal {
    return new AbortController().signal;
  },
});

function assertRate(value: unknown): asserts value is number {
  if (typeof value !== 'number') {
    throw new TypeError(`Expected \`failureRate\` to be a number in (0, 1], got ${describe(value)}`);
  }
  if (!(value > 0 && value <= 1)) {
    throw new RangeError(`Expected \`failureRate\` to be a number in (0, 1], got ${describe(value)}`);
  }
}

function assertWindow(value: unknown): asserts value is number {
  if (typeof value !== 'number') {
    throw new TypeError(`Expected \`windowMs\` to be a number of milliseconds, got ${describe(value)}`);
  }
  if (!(value > 0 && Number.isFinite(value))) {
    throw new RangeError(`Expected \`windowMs\` to be a finite number of milliseconds > 0, got ${describe(value)}`);
  }
}

/**
 * A circuit breaker: after too many failures of a dependency it **opens** and
 * turns calls away at once, with a {@link BrokenCircuitError}, without running
 * them; after `openMs` it is **half-open** and lets up to `halfOpenMaxCalls`
 * trial calls through: the first to succeed **closes** it (counts forgotten),
 * one that fails opens it again for a full `openMs`.
 *
 * - **What opens it.** `failureThreshold` counted failures in a row, or (with
 *   `failureRate`) a share of failures ≥ `failureRate` among at least
 *   `minimumCalls` calls of the last `windowMs`. A call's outcome counts if
 *   the breaker is still closed when it arrives; a trial's, if it is still the
 *   same half-open period.
 * - **What never counts.** A cancellation from outside: the caller's `signal`
 *   aborting, or the ambient scope ending — its cancellation or its deadline
 *   passing. The call rejects with that reason (`===`) and counts neither as a
 *   failure nor as a success; a trial cancelled so frees its slot.
 * - **What counts as a failure.** Any other rejection or throw of the work
 *   (filtered by `shouldCount`) — including a {@link TimeoutError} of the
 *   work's *own* deadline (a `withTimeout` inside `fn`, `withSafeAsync`'s
 *   per-attempt timeout): a dependency too slow to answer is failing.
 * - **The work** runs in a child scope of the ambient one (named after the
 *   breaker), so it is bounded by the caller's deadline and signal even when
 *   it ignores them; it receives `{ signal }`. With no ambient scope and no
 *   `signal`, nothing can cancel it: it is called directly, with no scope and
 *   no `AbortController` unless it reads `signal`.
 * - **Open → half-open** is worked out from the clock when the breaker is next
 *   used (`run`, `state`): no timer is armed, so an idle breaker holds nothing.
 *
 * Every transition is published on `loopsafe:circuit` ({@link CircuitMessage}).
 *
 * @category Resilience policies
 * @example
 * ```ts
 * import { BrokenCircuitError, CircuitBreaker } from 'loopsafe';
 *
 * const breaker = new CircuitBreaker({ name: 'billing', failureThreshold: 2, openMs: 30_000 });
 * const failing = async () => {
 *   throw new Error('503 from billing');
 * };
 * for (let i = 0; i < 3; i++) {
 *   try {
 *     await breaker.run(failing);
 *   } catch (error) {
 *     console.log(error instanceof BrokenCircuitError ? `open for ${Math.round(error.retryAfterMs / 1000)} s` : (error as Error).message);
 *   }
 * }
 * // '503 from billing', '503 from billing', 'open for 30 s'
 * console.log(breaker.state); // 'open'
 * breaker.reset();
 * console.log(await breaker.run(({ signal }) => `ok, aborted: ${String(signal.aborted)}`)); // 'ok, aborted: false'
 * ```
 */
export class CircuitBreaker {
  /** The breaker's name. */
  readonly name: string;
  readonly #failureThreshold: number;
  readonly #failureRate: number;
  readonly #minimumCalls: number;
  readonly #openMs: number;
  readonly #halfOpenMaxCalls: number;
  readonly #shouldCount: ((error: unknown) => boolean) | undefined;
  readonly #clock: Clock;
  /** The failure-rate window; `undefined` without `failureRate`. Empty whenever the breaker is not closed. */
  readonly #window: FailureWindow | undefined;

  /** The state as last worked out; `'open'` may have become `'half-open'` by the clock (see `#current`). */
  #state: CircuitState = 'closed';
  /** Counted failures in a row while closed; `0` in any other state. */
  #consecutive = 0;
  /** When it last opened, on `#clock`. */
  #openedAt = 0;
  /** Trial calls running in the current half-open period. */
  #trials = 0;
  /** Bumped at every transition: a trial's outcome counts only in the period it was admitted in. */
  #period = 0;

  /** The outcome handlers of a closed-state call with nothing to cancel it: made once, shared by every call. */
  readonly #closedSucceeded = <V>(value: V): V => {
    this.#succeeded(false, 0);
    return value;
  };
  readonly #closedFailed = (error: unknown): never => {
    throw this.#failed(false, 0, error);
  };

  /**
   * @param options - `name` (required), `failureThreshold`, `failureRate`, `minimumCalls`, `windowMs`,
   *   `openMs`, `halfOpenMaxCalls`, `shouldCount`, `clock`.
   * @throws `TypeError`/`RangeError` (synchronously) for a missing `name` or a bad option.
   */
  constructor(options: CircuitBreakerOptions) {
    if (typeof options !== 'object' || (options as unknown) === null || Array.isArray(options)) {
      throw new TypeError(`Expected the options of CircuitBreaker() to be an object, got ${describe(options)}`);
    }
    assertOptions('CircuitBreaker', options, BREAKER_OPTIONS);
    const {
      name,
      failureRate,
      minimumCalls = 10,
      windowMs = 10_000,
      openMs = 10_000,
      halfOpenMaxCalls = 1,
      shouldCount,
      clock,
    } = options;
    if (typeof name !== 'string') throw new TypeError(`Expected \`name\` to be a string, got ${describe(name)}`);
    const failureThreshold =
      options.failureThreshold === undefined
        ? failureRate === undefined
          ? 5
          : Number.POSITIVE_INFINITY
        : options.failureThreshold;
    assertCount('failureThreshold', failureThreshold);
    if (failureRate !== undefined) assertRate(failureRate);
    assertCount('minimumCalls', minimumCalls);
    assertWindow(windowMs);
    assertDuration('openMs', openMs);
    assertCount('halfOpenMaxCalls', halfOpenMaxCalls);
    if (shouldCount !== undefined) assertFunction('shouldCount', shouldCount);
    assertClock('clock', clock);
    this.name = name;
    this.#failureThreshold = failureThreshold;
    this.#failureRate = failureRate ?? Number.POSITIVE_INFINITY;
    this.#minimumCalls = minimumCalls;
    this.#openMs = openMs;
    this.#halfOpenMaxCalls = halfOpenMaxCalls;
    this.#shouldCount = shouldCount;
    this.#clock = clock ?? systemClock;
    this.#window = failureRate === undefined ? undefined : new FailureWindow(windowMs);
  }

  /** The state now: `'open'` turns `'half-open'` once `openMs` has passed on the clock. */
  get state(): CircuitState {
    return this.#current();
  }

  /**
   * Closes the breaker and forgets every count (a transition published with
   * reason `'reset'` if it was not closed). Calls still running from before
   * count for nothing when they settle, if they were trials.
   */
  reset(): void {
    const from = this.#current();
    this.#consecutive = 0;
    this.#window?.clear();
    if (from !== 'closed') this.#transition('closed', 'reset', this.#clock.now());
  }

  /**
   * Runs `fn({ signal })` if the breaker lets it through, and counts its
   * outcome.
   *
   * @param fn - The work; may be sync or async.
   * @param options - `signal`.
   * @returns `fn`'s result.
   * @throws {@link BrokenCircuitError} (rejection, at once, `fn` not called) while open, or half-open with every trial slot taken.
   * @throws the caller's `signal`'s or the ambient scope's reason (rejection, `===`) when they end first; `fn`'s error otherwise; `shouldCount`'s, if it throws.
   * @throws `TypeError` (synchronously) for a bad `fn` or option.
   */
  run<T>(fn: (context: CircuitContext) => T | PromiseLike<T>, options?: CircuitRunOptions): Promise<Awaited<T>> {
    assertFunction('fn', fn);
    let signal: AbortSignal | undefined;
    if (options !== undefined) {
      assertOptions('run', options, RUN_OPTIONS);
      signal = options.signal;
      assertSignal('signal', signal);
      if (signal?.aborted === true) return rejectedAtCaller(signal.reason);
    }
    const scope = ambientScope();
    if (scope !== undefined) {
      // A call whose caller is already cancelled or past its deadline does not run, and counts for nothing.
      try {
        scope.check();
      } catch (reason) {
        return Promise.reject(reason);
      }
    }
    const state = this.#state === 'closed' ? 'closed' : this.#current();
    let trial = false;
    if (state !== 'closed') {
      if (state === 'open') {
        return this.#turnAway(Math.max(0, this.#openedAt + this.#openMs - this.#clock.now()));
      }
      if (this.#trials >= this.#halfOpenMaxCalls) return this.#turnAway(0);
      this.#trials++;
      trial = true;
    }
    if (scope === undefined && signal === undefined) return this.#runBare(fn, trial);
    return this.#runScoped(fn, signal, trial);
  }

  /** Runs a call nothing can cancel: straight, with no scope. */
  #runBare<T>(fn: (context: CircuitContext) => T | PromiseLike<T>, trial: boolean): Promise<Awaited<T>> {
    const period = this.#period;
    let result: T | PromiseLike<T>;
    try {
      result = fn(UNCANCELLABLE);
    } catch (error) {
      return Promise.reject(this.#failed(trial, period, error));
    }
    let work: Promise<Awaited<T>>;
    if (result instanceof Promise) work = result as Promise<Awaited<T>>;
    else if (isPromiseLike(result)) work = Promise.resolve(result);
    else {
      this.#succeeded(trial, period);
      return Promise.resolve(result as Awaited<T>);
    }
    if (!trial) return work.then(this.#closedSucceeded, this.#closedFailed);
    return work.then(
      (value) => {
        this.#succeeded(true, period);
        return value;
      },
      (error: unknown) => {
        throw this.#failed(true, period, error);
      },
    );
  }

  /** Runs a call in a child scope of the ambient one, which the caller's signal and scope cancel. */
  #runScoped<T>(
    fn: (context: CircuitContext) => T | PromiseLike<T>,
    signal: AbortSignal | undefined,
    trial: boolean,
  ): Promise<Awaited<T>> {
    const period = this.#period;
    const child = openScope({ name: this.name, signal });
    return runScoped(child, (s) => fn(new Call(s))).then(
      (value) => {
        this.#succeeded(trial, period);
        return value as Awaited<T>;
      },
      (error: unknown) => {
        // The call scope has no deadline of its own: it is cancelled only from outside.
        if (child.cancelled) {
          if (trial && period === this.#period) this.#trials--;
          throw error;
        }
        throw this.#failed(trial, period, error);
      },
    );
  }

  #succeeded(trial: boolean, period: number): void {
    if (trial) {
      if (period !== this.#period) return;
      this.#transition('closed', 'trial-succeeded', this.#clock.now());
      return;
    }
    if (this.#state !== 'closed') return;
    this.#consecutive = 0;
    this.#window?.record(this.#clock.now(), false);
  }

  /** Counts a failure (if `shouldCount` agrees); returns what the call rejects with. */
  #failed(trial: boolean, period: number, error: unknown): unknown {
    if (trial ? period !== this.#period : this.#state !== 'closed') return error;
    const shouldCount = this.#shouldCount;
    if (shouldCount !== undefined) {
      let counts: boolean;
      try {
        counts = shouldCount(error);
      } catch (hookError) {
        if (trial) this.#trials--;
        return hookError;
      }
      if (!counts) {
        if (trial) this.#trials--;
        return error;
      }
    }
    if (trial) {
      this.#transition('open', 'trial-failed', this.#clock.now());
      return error;
    }
    if (++this.#consecutive >= this.#failureThreshold) {
      this.#transition('open', 'consecutive-failures', this.#clock.now());
      return error;
    }
    const window = this.#window;
    if (window !== undefined) {
      const now = this.#clock.now();
      window.record(now, true);
      if (window.calls >= this.#minimumCalls && window.failures / window.calls >= this.#failureRate) {
        this.#transition('open', 'failure-rate', now);
      }
    }
    return error;
  }

  /** The state, after turning `'open'` into `'half-open'` if `openMs` has passed. */
  #current(): CircuitState {
    if (this.#state === 'open') {
      const now = this.#clock.now();
      if (now - this.#openedAt >= this.#openMs) this.#transition('half-open', 'open-elapsed', now);
    }
    return this.#state;
  }

  #transition(to: CircuitState, reason: CircuitTransitionReason, now: number): void {
    const from = this.#state;
    this.#state = to;
    this.#period++;
    this.#trials = 0;
    this.#consecutive = 0;
    this.#window?.clear();
    if (to === 'open') this.#openedAt = now;
    publishCircuit(this.name, from, to, reason, now);
  }

  /** Rejects at once, without running the work; the error's stack is taken where the caller awaits. */
  #turnAway<T>(retryAfterMs: number): Promise<T> {
    const name = this.name;
    return rejectedAtCaller(
      createDeferred(() => new BrokenCircuitError(undefined, { breakerName: name, retryAfterMs })),
    );
  }
}
