/**
 * `retry`: run an operation again after failures, with backoff, inside a
 * deadline — never retrying an outside cancellation, never sleeping past the
 * deadline, and throttled by a shared budget.
 *
 * @module
 */
import type { BackoffFunction, BackoffOptions } from './backoff.js';
import type { Clock } from './clock.js';
import { isAbortError, TimeoutError } from './errors.js';
import {
  ambientScope,
  clockFor,
  openChild,
  openScope,
  runScoped,
  tracingScopes,
  waitBounded,
  type ScopeNode,
} from './internal/engine/index.js';
import { newTimeoutError } from './internal/engine/timeout-error.js';
import { publishRetry, publishTimeout } from './internal/publish.js';
import { readPlan, type Plan } from './internal/retry-plan.js';
import { createDeferred } from './internal/stacks.js';
import { countThrottled } from './internal/retry-throttle.js';
import { assertFunction, describe, isPromiseLike } from './internal/validate.js';
import type { RetryBudget } from './retry-budget.js';
import { safeSleep } from './sleep.js';

/**
 * What each attempt receives.
 *
 * @category Backoff and retry
 */
export interface RetryContext {
  /** The attempt number, counted from 1. */
  readonly attempt: number;
  /**
   * Aborts when this attempt's `attemptTimeout` passes, the whole retry's
   * `timeout` passes, the caller's `signal` aborts or an enclosing scope ends.
   * Created on first read: an attempt that never reads it pays nothing.
   */
  readonly signal: AbortSignal;
}

/**
 * What {@link RetryOptions.onRetry} receives before each wait.
 *
 * @category Backoff and retry
 */
export interface RetryEvent {
  /** `'error'`: the attempt failed; `'result'`: it fulfilled with a value `shouldRetryResult` retries. */
  readonly kind: RetryOutcomeKind;
  /** The failed attempt's error (any thrown value); `undefined` for a retried result. */
  readonly error: unknown;
  /** The retried result (for `kind: 'result'`); `undefined` for a failure. */
  readonly value: unknown;
  /** The attempt that failed, counted from 1. */
  readonly attempt: number;
  /** How long retry waits before the next attempt. */
  readonly delayMs: number;
}

/**
 * What is being retried: an attempt's error, or a result that
 * {@link RetryOptions.shouldRetryResult} asked to retry.
 *
 * @category Backoff and retry
 */
export type RetryOutcomeKind = 'error' | 'result';

/**
 * What {@link RetryOptions.retryAfter} receives beside the outcome.
 *
 * @category Backoff and retry
 */
export interface RetryAfterContext {
  /** The attempt whose outcome is retried, counted from 1. */
  readonly attempt: number;
  /** `'error'`: the outcome is the attempt's error; `'result'`: it is the value it fulfilled with. */
  readonly kind: RetryOutcomeKind;
}

/**
 * What {@link RetryOptions.shouldRetry} and {@link RetryOptions.shouldRetryResult} receive beside the outcome.
 *
 * @category Backoff and retry
 */
export interface RetryDecisionContext {
  /** The attempt whose outcome is judged, counted from 1. */
  readonly attempt: number;
}

/**
 * The default of {@link RetryOptions.shouldRetry}: every error is worth
 * retrying except an abort — a cancellation is never a transient failure
 * (an `AbortError` of the platform, Node, or a peer such as p-retry's, by
 * {@link isAbortError}; a {@link TimeoutError}, an attempt cut by
 * `attemptTimeout` included, is retried). An outside cancellation (the
 * caller's `signal`, an enclosing scope) is never retried whatever the
 * predicate says. Compose your own predicate with it.
 *
 * @param error - The failed attempt's error.
 * @param _context - `{ attempt }` (unused by the default).
 * @returns Whether to retry.
 * @category Backoff and retry
 * @example
 * ```ts
 * import { defaultShouldRetry, retry } from 'loopsafe';
 *
 * class HttpError extends Error {
 *   constructor(readonly status: number) { super(`HTTP ${status}`); }
 * }
 * let calls = 0;
 * const error = await retry(async () => { calls++; throw new HttpError(404); }, {
 *   backoff: () => 0,
 *   // Client errors are final; everything else as by default.
 *   shouldRetry: (e, context) => !(e instanceof HttpError && e.status < 500) && defaultShouldRetry(e, context),
 * }).catch((e: unknown) => e);
 * console.log((error as Error).message, calls); // 'HTTP 404' 1
 * console.log(defaultShouldRetry(new Error('ECONNRESET'), { attempt: 1 })); // true
 * console.log(defaultShouldRetry(new DOMException('stop', 'AbortError'), { attempt: 1 })); // false
 * ```
 */
export function defaultShouldRetry(error: unknown, _context: RetryDecisionContext): boolean {
  return !isAbortError(error);
}

/**
 * Options for {@link retry}.
 *
 * @category Backoff and retry
 */
export interface RetryOptions<T = unknown> {
  /**
   * Attempts in all, first included: an integer ≥ 1, or `Infinity` (bound it with `timeout`).
   * @defaultValue `3`
   */
  maxAttempts?: number | undefined;
  /**
   * The delay before each retry: {@link BackoffOptions}, or a function made by {@link backoff}
   * (or your own). Every delay is capped by its `maxMs`.
   * @defaultValue `backoff()`: 100 ms doubling to 30 s, full jitter
   */
  backoff?: BackoffOptions | BackoffFunction | undefined;
  /**
   * Milliseconds for the whole operation, waits included: a scope, so nested loopsafe calls see it.
   * @defaultValue `Infinity` (the enclosing scope's deadline still applies)
   */
  timeout?: number | undefined;
  /**
   * Milliseconds for each attempt, clamped to what remains of the deadline. An attempt cut by
   * it fails with its own `TimeoutError` (its signal aborted), which is retryable.
   * @defaultValue `Infinity`
   */
  attemptTimeout?: number | undefined;
  /**
   * Decides whether a failed attempt's error is worth retrying. Consulted for every failure
   * (the last included) except an outside cancellation; only retryable failures count against
   * the `budget`. If it throws, retry rejects with that error.
   * @defaultValue {@link defaultShouldRetry}: every error but an abort
   */
  shouldRetry?: ((error: unknown, context: RetryDecisionContext) => boolean | PromiseLike<boolean>) | undefined;
  /**
   * Decides whether a *result* is worth retrying — a `Response` with status 503, a job still
   * pending. Consulted for every value an attempt fulfils with; `true` retries it like a
   * failure (backoff, `retryAfter`, `onRetry`, `budget`, deadline). When retry stops retrying
   * it — attempts run out, the budget refuses, or the next wait would pass the deadline — the
   * last value is **returned**, not thrown. If it throws, retry rejects with that error.
   * @defaultValue none: every result is final
   */
  shouldRetryResult?: ((value: T, context: RetryDecisionContext) => boolean | PromiseLike<boolean>) | undefined;
  /**
   * Called (and awaited) before each wait. If it throws, retry rejects with that error.
   * @defaultValue none
   */
  onRetry?: ((event: RetryEvent) => void | PromiseLike<void>) | undefined;
  /**
   * Reads the wait the server asked for (in ms), e.g. with {@link parseRetryAfter}, from the
   * outcome being retried: the attempt's error, or — for a result retried by
   * `shouldRetryResult` (`context.kind === 'result'`) — the value itself, such as a 429/503
   * `Response` whose `Retry-After` header says when to come back. A finite number ≥ 0
   * replaces the backoff delay and is honoured in full, past the backoff's `maxMs`, as long as
   * the wait fits the deadline; when it does not, retry gives up at once. `undefined` keeps
   * the backoff delay.
   * @defaultValue none: always the backoff delay
   */
  retryAfter?: ((outcome: unknown, context: RetryAfterContext) => number | undefined) | undefined;
  /**
   * A {@link RetryBudget} shared with other calls to the same dependency.
   * @defaultValue none: retries limited by `maxAttempts` only
   */
  budget?: RetryBudget | undefined;
  /** Cancels the whole retry; it rejects with the signal's reason (`===`) and never retries it. */
  signal?: AbortSignal | undefined;
  /** @defaultValue the ambient scope's clock, else {@link systemClock} */
  clock?: Clock | undefined;
  /**
   * Names the retry's scope (in its `TimeoutError` and `pendingScopes()`).
   * @defaultValue `fn.name`, else `'retry'`
   */
  name?: string | undefined;
}

/**
 * The context handed to an attempt; its signal is the scope's lazy one. With
 * no scope at all nothing can cancel the attempt, and its signal — made only
 * if read — never aborts.
 */
class Attempt implements RetryContext {
  readonly attempt: number;
  readonly #scope: ScopeNode | undefined;
  #signal: AbortSignal | undefined = undefined;
  constructor(attempt: number, scope: ScopeNode | undefined) {
    this.attempt = attempt;
    this.#scope = scope;
  }
  get signal(): AbortSignal {
    return this.#scope?.signal ?? (this.#signal ??= new AbortController().signal);
  }
}

/** One retry operation: its scope, its plan, and the last failure seen. */
class RetryLoop<T> {
  /** At least one attempt failed (its error may be any value, `undefined` included). */
  failed = false;
  lastError: unknown = undefined;
  attempts = 1;
  /**
   * The retry's own scope, whose end stops the loop; `undefined` when nothing
   * could cancel the retry (no `timeout`, `signal`, `attemptTimeout` or
   * enclosing scope), which keeps that success path cheap.
   */
  scope: ScopeNode | undefined = undefined;
  /** Each attempt runs in a child scope of its own, traced on `loopsafe:scope`. */
  traced = false;
  /** Whether the attempts' scopes are named (for tracing). */
  attemptsNamed = true;
  #previousDelay: number | undefined = undefined;
  readonly #fn: (context: RetryContext) => T | PromiseLike<T>;
  readonly #plan: Plan;
  readonly #clock: Clock;
  readonly #name: string;

  constructor(fn: (context: RetryContext) => T | PromiseLike<T>, plan: Plan, clock: Clock, name: string) {
    this.#fn = fn;
    this.#plan = plan;
    this.#clock = clock;
    this.#name = name;
  }

  /**
   * Runs attempt 1 without an async frame (the success path stays cheap);
   * only a failure — or, with `shouldRetryResult`, any result — enters the retry loop.
   */
  run(): T | PromiseLike<T> {
    if (this.#plan.shouldRetryResult !== undefined) return this.#resultLoop();
    let result: T | PromiseLike<T>;
    try {
      result = this.#attempt(1);
    } catch (error) {
      return this.#retryLoop(error, 1);
    }
    const budget = this.#plan.budget;
    if (!isPromiseLike(result)) {
      budget?.recordSuccess();
      return result;
    }
    return Promise.resolve(result).then(
      budget === undefined ? undefined : (value) => (budget.recordSuccess(), value),
      (error: unknown) => this.#retryLoop(error, 1),
    );
  }

  /** From a failed attempt on: decide, wait, try again — until success or a reason to stop. */
  async #retryLoop(error: unknown, failedAttempt: number): Promise<T> {
    for (let attempt = failedAttempt + 1; ; attempt++) {
      await this.#beforeRetry(error, attempt - 1);
      this.attempts = attempt;
      try {
        const value = await this.#attempt(attempt);
        this.#plan.budget?.recordSuccess();
        return value;
      } catch (caught) {
        error = caught;
      }
    }
  }

  /** The loop when results may be retried too: each value is judged by `shouldRetryResult`. */
  async #resultLoop(): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      this.attempts = attempt;
      let value: T;
      try {
        value = await this.#attempt(attempt);
      } catch (error) {
        await this.#beforeRetry(error, attempt);
        continue;
      }
      // Retried like a failure, but when retrying stops, the last value is the outcome.
      if (!(await this.#next('result', value, attempt))) return value;
    }
  }

  /** Handles attempt `attempt`'s failure: throws to stop the loop, else waits the delay. */
  async #beforeRetry(error: unknown, attempt: number): Promise<void> {
    if (!(await this.#next('error', error, attempt))) throw error;
  }

  /**
   * After attempt `attempt`'s outcome (its error, or a value for
   * `shouldRetryResult` to judge): decides, counts it against the budget,
   * then waits the delay before the next attempt. Returns `false` when it is
   * not retried — not retryable (a final result is a success), attempts run
   * out, the budget refuses, or, for a result, the wait would pass the
   * deadline; throws to stop with another error (a cancellation, or a
   * failure whose wait would pass the deadline: its TimeoutError).
   */
  async #next(kind: 'error' | 'result', outcome: unknown, attempt: number): Promise<boolean> {
    const plan = this.#plan;
    const scope = this.scope;
    // The operation scope (or anything above it) was cancelled: never retried.
    this.#throwIfCancelled();
    if (kind === 'error') {
      this.failed = true;
      this.lastError = outcome;
    }
    const judge =
      kind === 'error'
        ? (plan.shouldRetry ?? defaultShouldRetry)
        : (plan.shouldRetryResult as NonNullable<Plan['shouldRetryResult']>);
    const verdict = judge(outcome, { attempt });
    // A hook is awaited only as long as the retry's deadline allows.
    const retryable = isPromiseLike(verdict) ? await waitBounded(Promise.resolve(verdict), scope) : verdict;
    this.#throwIfCancelled();
    if (!retryable) {
      if (kind === 'result') plan.budget?.recordSuccess();
      return false;
    }
    plan.budget?.recordFailure();
    if (attempt >= plan.maxAttempts) return false;
    if (plan.budget !== undefined && !plan.budget.canRetry()) {
      countThrottled(plan.budget);
      return false;
    }
    const delayMs = this.#delayFor(kind, outcome, attempt);
    if (scope !== undefined) {
      scope.check();
      const remaining = scope.remaining();
      if (delayMs >= remaining) {
        if (kind === 'result') return false;
        throw this.#gaveUp(scope, outcome, delayMs, remaining);
      }
    }
    const error = kind === 'error' ? outcome : undefined;
    const value = kind === 'result' ? outcome : undefined;
    publishRetry(this.#name, attempt, delayMs, kind, error, value);
    if (plan.onRetry !== undefined) {
      const done = plan.onRetry({ kind, error, value, attempt, delayMs });
      if (isPromiseLike(done)) await waitBounded(Promise.resolve(done), scope);
    }
    await safeSleep(delayMs, { clock: this.#clock });
    return true;
  }

  /** Stops the loop once the operation scope is cancelled (its promise has already rejected). */
  #throwIfCancelled(): void {
    const scope = this.scope;
    if (scope?.cancelled === true) throw scope.reason;
  }

  /** Runs one attempt: inline in the operation scope, or in its own child scope when `attemptTimeout` is set. */
  #attempt(attempt: number): T | PromiseLike<T> {
    const scope = this.scope;
    const attemptTimeout = this.#plan.attemptTimeout;
    if ((attemptTimeout === undefined && !this.traced) || scope === undefined)
      return this.#fn(new Attempt(attempt, scope));
    const child = openChild(scope, {
      name: `${scope.name} attempt ${String(attempt)}`,
      named: this.attemptsNamed,
      timeoutMs: attemptTimeout,
    });
    return runScoped(child, (s) => this.#fn(new Attempt(attempt, s)), this.traced);
  }

  /**
   * The server's `retryAfter`, honoured in full (the deadline still bounds
   * it: see `#wait`), else the backoff delay, capped by `maxMs`.
   */
  #delayFor(kind: 'error' | 'result', outcome: unknown, attempt: number): number {
    const plan = this.#plan;
    const asked = plan.retryAfter?.(outcome, { attempt, kind });
    if (asked === undefined) {
      const delayMs = plan.delay(attempt, this.#previousDelay);
      if (typeof delayMs !== 'number' || !(delayMs >= 0)) throw badDelay('backoff(attempt)', delayMs, kind, outcome);
      return (this.#previousDelay = Math.min(delayMs, plan.maxMs));
    }
    if (typeof asked !== 'number' || !(asked >= 0 && asked !== Number.POSITIVE_INFINITY)) {
      throw badDelay(kind === 'error' ? 'retryAfter(error)' : 'retryAfter(value)', asked, kind, outcome);
    }
    // The backoff goes on from its own scale: a long server-asked wait does not inflate the next delay.
    this.#previousDelay = Math.min(asked, plan.maxMs);
    return asked;
  }

  /**
   * The error for giving up before a wait that would pass the deadline. It is
   * a timeout like any other: published on `loopsafe:timeout`, naming the
   * scope whose deadline it is.
   */
  #gaveUp(scope: ScopeNode, error: unknown, delayMs: number, remaining: number): TimeoutError {
    const owner = scope.deadlineScope;
    const gaveUp = createDeferred(
      () =>
        new TimeoutError(
          `Retry "${scope.name}" gave up after ${String(this.attempts)} attempt(s): waiting ${String(delayMs)} ms ` +
            `would pass the deadline of scope "${owner.name}" (${String(remaining)} ms left)`,
          { scopeName: owner.name, timeoutMs: owner.timeoutMs, cause: error },
        ),
    );
    publishTimeout(owner.name, owner.timeoutMs, gaveUp, owner);
    return gaveUp;
  }

  /**
   * The error the retry's own deadline cancels it with — the one its caller
   * receives and `loopsafe:timeout` publishes: a TimeoutError whose `cause`
   * is the last failed attempt's error.
   */
  timeoutError(scope: ScopeNode): TimeoutError {
    if (!this.failed) return newTimeoutError(scope.name, scope.timeoutMs);
    return createDeferred(
      () =>
        new TimeoutError(
          `Retry "${scope.name}" timed out after ${String(scope.timeoutMs)} ms (${String(this.attempts)} attempt(s))`,
          { scopeName: scope.name, timeoutMs: scope.timeoutMs, cause: this.lastError },
        ),
    );
  }
}

/** The error for a hook or backoff function that returned no valid delay: the outcome retried is its cause. */
function badDelay(source: string, delayMs: unknown, kind: 'error' | 'result', outcome: unknown): TypeError {
  return new TypeError(
    `Expected \`${source}\` to return a non-negative number of milliseconds (finite), got ${describe(delayMs)}; ` +
      `the attempt's ${kind === 'error' ? 'error' : 'result'} is the cause`,
    { cause: outcome },
  );
}

/**
 * Calls `fn({ attempt, signal })` until it succeeds, up to `maxAttempts`
 * times, waiting a {@link backoff} delay between attempts.
 *
 * - The whole operation runs in one scope (`timeout`, `signal`, child of the
 *   ambient scope): `fn`, its nested loopsafe calls and the waits all stop at
 *   its deadline. With `attemptTimeout`, each attempt runs in its own child
 *   scope; an attempt that ignores its signal cannot stall the loop. (With no
 *   `timeout`, `signal`, `attemptTimeout` or enclosing scope, nothing could
 *   cancel the retry, so it opens no scope at all: that success path costs
 *   about as much as a hand-written try/catch loop.)
 * - Never retries an outside cancellation: when `signal` aborts or an
 *   enclosing scope ends, rejects at once with that reason (`===`).
 * - Gives up at once, rather than sleeping into the deadline, when the next
 *   wait would pass it: rejects with a {@link TimeoutError} naming the scope
 *   whose deadline it is, the last attempt's error as `cause`.
 * - When `timeout` passes, rejects with a {@link TimeoutError} whose `cause` is
 *   the last failed attempt's error (the scope's own error, as the attempt's
 *   signal saw it, if no attempt had failed yet).
 * - Otherwise rejects with the last attempt's error itself (`===`), whatever
 *   was thrown — non-`Error` values are retried by the same rules.
 *
 * @param fn - The operation; receives `{ attempt, signal }`.
 * @param options - `maxAttempts`, `backoff`, `timeout`, `attemptTimeout`, `shouldRetry`, `onRetry`,
 *   `retryAfter`, `budget`, `signal`, `clock`, `name`.
 * @returns `fn`'s first successful result.
 * @throws the last attempt's error, the caller's or an enclosing scope's reason, or a {@link TimeoutError} (rejection).
 * @throws `TypeError`/`RangeError` (synchronously) for a bad `fn` or option.
 * @category Backoff and retry
 * @example
 * ```ts
 * import { retry, parseRetryAfter } from 'loopsafe';
 *
 * let calls = 0;
 * const flaky = async ({ attempt }: { attempt: number }) => {
 *   calls++;
 *   if (attempt < 3) throw Object.assign(new Error('503'), { retryAfter: '0' });
 *   return 'ok';
 * };
 * const result = await retry(flaky, {
 *   maxAttempts: 5,
 *   timeout: 2_000,
 *   attemptTimeout: 500,
 *   backoff: { initialMs: 5, maxMs: 50 },
 *   retryAfter: (error) => parseRetryAfter((error as { retryAfter?: string }).retryAfter),
 *   onRetry: ({ attempt, delayMs }) => console.log(`attempt ${attempt} failed; next in ${delayMs} ms`),
 * });
 * console.log(result, calls); // 'ok' 3
 * ```
 */
export function retry<T>(
  fn: (context: RetryContext) => T | PromiseLike<T>,
  options?: RetryOptions<Awaited<T>>,
): Promise<Awaited<T>> {
  return retryTraced(fn, options, undefined);
}

/** How a retry's scopes are named for tracing (see `OpenOptions.named`). */
export interface RetryNaming {
  /** Whether the retry's own scope is named. */
  readonly scope: boolean;
  /** Whether its attempts' scopes are. */
  readonly attempts: boolean;
}

/**
 * {@link retry}, with the naming of its scopes given: `withSafeAsync` runs its
 * retry in an unnamed scope (the call's own scope, of the same name, is the
 * span), its attempts named after the call.
 *
 * @internal
 */
export function retryTraced<T>(
  fn: (context: RetryContext) => T | PromiseLike<T>,
  options: RetryOptions<Awaited<T>> | undefined,
  naming: RetryNaming | undefined,
): Promise<Awaited<T>> {
  assertFunction('fn', fn);
  const plan = readPlan(options);
  const parent = ambientScope();
  const clock = clockFor(options?.clock, parent);
  const timeout = options?.timeout ?? Number.POSITIVE_INFINITY;
  const name = options?.name ?? (fn.name || 'retry');
  const loop = new RetryLoop(fn, plan, clock, name);
  // Traced, a retry opens its scope, and a scope per attempt: the attempts are the retry's children.
  const traced = tracingScopes();
  if (
    !traced &&
    parent === undefined &&
    timeout === Number.POSITIVE_INFINITY &&
    options?.signal === undefined &&
    plan.attemptTimeout === undefined
  ) {
    // Nothing can cancel this retry (no deadline, no signal, no enclosing scope): open no scope.
    try {
      return Promise.resolve(loop.run());
    } catch (error) {
      return Promise.reject(error);
    }
  }
  const named = options?.name !== undefined || fn.name !== '';
  loop.traced = traced;
  loop.attemptsNamed = naming?.attempts ?? named;
  const scope = openScope({
    name,
    named: naming?.scope ?? named,
    timeoutMs: timeout,
    signal: options?.signal,
    clock,
    timeoutError: (s) => loop.timeoutError(s),
  });
  loop.scope = scope;
  return runScoped(scope, () => loop.run(), traced) as Promise<Awaited<T>>;
}
