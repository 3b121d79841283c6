/**
 * `withSafeAsync` and the `@safeAsync` decorator: give every call of a
 * function its own child scope with a timeout, retries, a concurrency limit
 * and a name — without touching any global.
 *
 * @module
 */
import type { CircuitBreaker } from './circuit-breaker.js';
import type { Clock } from './clock.js';
import { isBrokenCircuitError, TimeoutError } from './errors.js';
import { openScope, runScoped } from './internal/engine/index.js';
import { newTimeoutError } from './internal/engine/timeout-error.js';
import { createDeferred } from './internal/stacks.js';
import {
  assertClock,
  assertDuration,
  assertFunction,
  assertOptionalString,
  assertOptions,
  assertSignal,
  describe,
} from './internal/validate.js';
import { assertRetryOptions } from './internal/retry-plan.js';
import type { RateLimiter } from './rate-limiter.js';
import { defaultShouldRetry, retryTraced, type RetryContext, type RetryOptions } from './retry.js';
import { Semaphore } from './semaphore.js';

/**
 * The policy applied to every call of a function wrapped by
 * {@link withSafeAsync} (or decorated with {@link safeAsync}).
 *
 * @category Wrapper
 */
export interface SafeAsyncPolicy {
  /**
   * Milliseconds for each call, waiting for a `concurrency` permit and every
   * retry included. The enclosing scope's deadline still applies.
   * @defaultValue `Infinity`
   */
  timeout?: number | undefined;
  /**
   * Retry each call on failure with these {@link RetryOptions}, or `false` for no retries.
   * @defaultValue `false`
   */
  retry?: RetryOptions | false | undefined;
  /**
   * At most this many calls run at once; the rest wait, FIFO, and the wait
   * counts against `timeout`. A number makes one {@link Semaphore} per wrapped
   * function (per instance for {@link safeAsync}); pass a `Semaphore` to share
   * one limit between several functions.
   * @defaultValue `Infinity`
   */
  concurrency?: number | Semaphore | undefined;
  /**
   * Takes one token of this {@link RateLimiter} per call (not per retry), once the call holds
   * its `concurrency` permit; a call whose token would come after its deadline is refused at
   * once with a {@link RateLimitError}. Share one limiter between functions to share the rate.
   * @defaultValue none
   */
  rateLimiter?: RateLimiter | undefined;
  /**
   * Runs every attempt through this {@link CircuitBreaker}: each retry attempt is counted, an
   * attempt cut by `retry.attemptTimeout` counts as a failure, and once the breaker is open the
   * call stops retrying and rejects with its {@link BrokenCircuitError}.
   * @defaultValue none
   */
  breaker?: CircuitBreaker | undefined;
  /**
   * Names each call's scope (in its {@link TimeoutError}, `pendingScopes()` and diagnostics).
   * @defaultValue `fn.name`, else `'withSafeAsync'` (the method's name for {@link safeAsync})
   */
  name?: string | undefined;
  /** Cancels every call (a shutdown signal); a call rejects with its reason (`===`). */
  signal?: AbortSignal | undefined;
  /** @defaultValue the caller's ambient scope's clock, else {@link systemClock} */
  clock?: Clock | undefined;
}

/**
 * A function wrapped by {@link withSafeAsync}: the same `this` and
 * parameters, always returning a promise.
 *
 * @category Wrapper
 */
export type SafeAsyncFunction<This, Args extends unknown[], R> = (this: This, ...args: Args) => Promise<Awaited<R>>;

const POLICY_KEYS = new Set(['timeout', 'retry', 'concurrency', 'rateLimiter', 'breaker', 'name', 'signal', 'clock']);

/** A validated policy, shared by every call. */
interface Plan {
  readonly name: string;
  /** Whether the name was given (the policy's `name`, the function's own name), not the default. */
  readonly named: boolean;
  readonly timeout: number;
  readonly retry: RetryOptions | undefined;
  /** Permits per semaphore when the policy gave a number; `undefined` for none or a shared semaphore. */
  readonly permits: number | undefined;
  readonly semaphore: Semaphore | undefined;
  readonly rateLimiter: RateLimiter | undefined;
  readonly breaker: CircuitBreaker | undefined;
  readonly signal: AbortSignal | undefined;
  readonly clock: Clock | undefined;
}

function readPolicy(
  fnName: string,
  policy: SafeAsyncPolicy | undefined,
  defaultName: string,
  defaultNamed = true,
): Plan {
  assertOptions(fnName, policy, POLICY_KEYS);
  const {
    timeout = Number.POSITIVE_INFINITY,
    retry: retryOptions,
    concurrency,
    rateLimiter,
    breaker,
    name,
    signal,
    clock,
  } = policy ?? {};
  assertDuration('timeout', timeout);
  // Recognised by shape, not instanceof: two copies of loopsafe interoperate, and a function wrapped
  // without these policies does not pull the classes into its bundle.
  if (
    rateLimiter !== undefined &&
    !(hasMethods(rateLimiter, 'acquire', 'tryAcquire') && typeof rateLimiter.ratePerSecond === 'number')
  ) {
    throw new TypeError(`Expected \`rateLimiter\` to be a RateLimiter, got ${describe(rateLimiter)}`);
  }
  if (breaker !== undefined && !hasMethods(breaker, 'run', 'reset')) {
    throw new TypeError(`Expected \`breaker\` to be a CircuitBreaker, got ${describe(breaker)}`);
  }
  assertOptionalString('name', name);
  assertSignal('signal', signal);
  assertClock('clock', clock);
  let permits: number | undefined;
  let semaphore: Semaphore | undefined;
  if (concurrency instanceof Semaphore) semaphore = concurrency;
  else if (concurrency !== undefined && concurrency !== Number.POSITIVE_INFINITY) {
    if (typeof concurrency !== 'number') {
      throw new TypeError(
        `Expected \`concurrency\` to be an integer ≥ 1, Infinity or a Semaphore, got ${describe(concurrency)}`,
      );
    }
    if (!(Number.isInteger(concurrency) && concurrency >= 1)) {
      throw new RangeError(
        `Expected \`concurrency\` to be an integer ≥ 1, Infinity or a Semaphore, got ${describe(concurrency)}`,
      );
    }
    permits = concurrency;
  }
  return {
    name: name ?? defaultName,
    named: name !== undefined || defaultNamed,
    timeout,
    retry: readRetry(retryOptions),
    permits,
    semaphore,
    rateLimiter,
    breaker,
    signal,
    clock,
  };
}

function hasMethods(value: unknown, ...names: string[]): boolean {
  if (typeof value !== 'object' || value === null) return false;
  return names.every((name) => typeof (value as Record<string, unknown>)[name] === 'function');
}

function readRetry(options: unknown): RetryOptions | undefined {
  if (options === undefined || options === false) return undefined;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`Expected \`retry\` to be retry options or false, got ${describe(options)}`);
  }
  const retryOptions = options as RetryOptions;
  // Bad retry options fail here, when the function is wrapped, not at its first call.
  assertRetryOptions(retryOptions);
  return retryOptions;
}

/** Calls `fn` with `this` and `args` under a policy: one child scope per call. */
function invoke<This, Args extends unknown[], R>(
  plan: Plan,
  semaphore: Semaphore | undefined,
  fn: (this: This, ...args: Args) => R,
  self: This,
  args: Args,
): Promise<Awaited<R>> {
  const { name, timeout } = plan;
  const retryOptions = plan.retry;
  let lastFailure: { error: unknown } | undefined;
  const scope = openScope({
    name,
    named: plan.named,
    timeoutMs: timeout,
    signal: plan.signal,
    clock: plan.clock,
    // The call's own deadline cut a retry short: like retry's own timeout, its error says what failed last.
    timeoutError:
      retryOptions === undefined
        ? undefined
        : (s) => {
            const failure = lastFailure;
            if (failure === undefined) return newTimeoutError(s.name, s.timeoutMs);
            return createDeferred(
              () =>
                new TimeoutError(`Scope "${name}" timed out after ${String(timeout)} ms while retrying`, {
                  scopeName: name,
                  timeoutMs: timeout,
                  cause: failure.error,
                }),
            );
          },
  });
  const call = attempts(
    plan,
    name,
    () => fn.apply(self, args),
    (error) => {
      lastFailure = { error };
    },
  );
  const { rateLimiter } = plan;
  if (semaphore === undefined && rateLimiter === undefined) return runScoped(scope, call) as Promise<Awaited<R>>;
  // The call's scope is owned by its work, which holds the permit until it settles — also past the
  // deadline, when it ignores its signal: the caller is released at the deadline, the limit counts
  // the work still running, and the stall watchdog reports the call.
  return runScoped(scope, async (): Promise<Awaited<R>> => {
    const permit = semaphore === undefined ? undefined : await semaphore.acquire();
    try {
      // The deadline may have passed between the grant and now: then the work does not start.
      if (scope.cancelled) throw scope.reason;
      // One token per call, taken while holding the permit; refused at once if it would come too late.
      if (rateLimiter !== undefined) await rateLimiter.acquire();
      return await call();
    } finally {
      permit?.release();
    }
  });
}

/**
 * The work of one call, inside the concurrency permit and the rate-limit token:
 * retry → breaker → attempt timeout → `fn`. With a breaker, the attempt timeout
 * is applied here, inside the breaker (so an attempt that times out counts as
 * its failure), rather than by `retry`; a {@link BrokenCircuitError} is never retried.
 */
function attempts<R>(
  plan: Plan,
  name: string,
  once: () => R,
  onRetry: (error: unknown) => void,
): () => R | PromiseLike<R> | Promise<Awaited<R>> {
  const retryOptions = plan.retry;
  const { breaker } = plan;
  if (retryOptions === undefined) return breaker === undefined ? once : () => breaker.run(once);
  const retryName = retryOptions.name ?? name;
  const retrying: RetryOptions = {
    ...retryOptions,
    name: retryName,
    onRetry: (event) => {
      onRetry(event.error);
      return retryOptions.onRetry?.(event);
    },
  };
  let attempt: (context: RetryContext) => R | PromiseLike<R> = once;
  if (breaker !== undefined) {
    const { attemptTimeout } = retryOptions;
    const timed =
      attemptTimeout === undefined
        ? once
        : (context: RetryContext): Promise<R> =>
            runScoped(
              openScope({ name: `${retryName} attempt ${String(context.attempt)}`, timeoutMs: attemptTimeout }),
              once,
            );
    attempt = (context) => breaker.run(() => timed(context));
    const shouldRetry = retryOptions.shouldRetry ?? defaultShouldRetry;
    retrying.attemptTimeout = undefined;
    retrying.shouldRetry = (error, context) => !isBrokenCircuitError(error) && shouldRetry(error, context);
  }
  // Traced, the call's scope is the span; its retry's scope is one only if named on its own.
  const naming = { scope: retryOptions.name !== undefined, attempts: retryOptions.name !== undefined || plan.named };
  return () => retryTraced(attempt, retrying, naming);
}

function nameLike(target: (...args: never[]) => unknown, from: (...args: never[]) => unknown): void {
  Object.defineProperty(target, 'name', { value: from.name, configurable: true });
  Object.defineProperty(target, 'length', { value: from.length, configurable: true });
}

/**
 * Wraps `fn` so that every call runs in its own child scope of the caller's
 * ambient scope, under `policy`:
 *
 * - `timeout`: the call rejects with its {@link TimeoutError} at the deadline,
 *   promptly, without waiting for `fn`; `fn` finds the scope (and its signal)
 *   through `currentScope()`/`currentSignal()`, and every loopsafe primitive
 *   inside it stops at that deadline.
 * - `retry`: failed calls are retried by {@link retry}, in a child scope of the
 *   call's scope, so retries and their waits all fit in the call's `timeout`.
 *   When that timeout cuts the retries short, the TimeoutError's `cause` is
 *   the last failure.
 * - `concurrency`: calls beyond the limit wait their turn (FIFO); the wait
 *   counts against the call's deadline. The limit bounds the work that is
 *   really running: a call whose deadline passed while `fn` ignores its
 *   signal releases its caller on time (with its TimeoutError) but keeps its
 *   permit until `fn`'s work settles, and `watchStalls` reports it.
 * - `rateLimiter`: each call takes one token of a {@link RateLimiter} once
 *   it holds its permit, and is refused at once with a {@link RateLimitError}
 *   when the token would come after the call's deadline.
 * - `breaker`: every attempt runs through a {@link CircuitBreaker}; an open
 *   breaker stops the retries with its {@link BrokenCircuitError}.
 * - `name`: the scope's name, in errors, `pendingScopes()` and diagnostics.
 *
 * The policies compose in one order, outermost first: the call's scope
 * (`timeout`, `signal`) → `concurrency` → `rateLimiter` → `retry` →
 * `breaker` → `retry.attemptTimeout` → `fn`. So a call waits for its permit,
 * then for its token (one per call, however many attempts it makes), then
 * each attempt passes the breaker, and an attempt cut by its own timeout
 * counts as a failure of the breaker's dependency.
 *
 * The wrapper keeps `fn`'s `this`, parameters, `name` and `length`; a sync
 * `fn`'s result (or throw) becomes a promise. No global is touched.
 *
 * @param fn - The function to wrap (sync or async; `this` is passed through).
 * @param policy - `timeout`, `retry`, `concurrency`, `rateLimiter`, `breaker`, `name`, `signal`, `clock`.
 * @returns The wrapped function.
 * @throws `TypeError`/`RangeError` (synchronously, when wrapping) for a bad `fn` or policy.
 * @throws the call's {@link TimeoutError}, an enclosing scope's reason, `signal`'s reason, a {@link RateLimitError}, a {@link BrokenCircuitError}, or `fn`'s error (rejections of the wrapped function).
 * @category Wrapper
 * @example
 * ```ts
 * import { currentSignal, safeSleep, withSafeAsync } from 'loopsafe';
 *
 * let failures = 1;
 * const getUser = withSafeAsync(async (id: number) => {
 *   await safeSleep(5); // stops at the call's deadline
 *   if (failures-- > 0) throw new Error('flaky');
 *   return { id, aborted: currentSignal()?.aborted };
 * }, { name: 'getUser', timeout: 500, retry: { maxAttempts: 3, backoff: { initialMs: 1 } }, concurrency: 2 });
 *
 * console.log(await getUser(42)); // { id: 42, aborted: false }
 * ```
 */
export function withSafeAsync<This, Args extends unknown[], R>(
  fn: (this: This, ...args: Args) => R,
  policy?: SafeAsyncPolicy,
): SafeAsyncFunction<This, Args, R> {
  assertFunction('fn', fn);
  const plan = readPolicy('withSafeAsync', policy, fn.name || 'withSafeAsync', fn.name !== '');
  const semaphore = plan.semaphore ?? (plan.permits === undefined ? undefined : new Semaphore(plan.permits));
  const wrapped = function (this: This, ...args: Args): Promise<Awaited<R>> {
    return invoke(plan, semaphore, fn, this, args);
  };
  nameLike(wrapped, fn);
  return wrapped;
}

/**
 * A standard (TC39, TypeScript 5) method decorator applying a
 * {@link SafeAsyncPolicy} to every call of an async method — the decorator
 * form of {@link withSafeAsync}. Do not enable `experimentalDecorators`.
 *
 * A numeric `concurrency` limits calls **per instance** (each object gets its
 * own {@link Semaphore}, created on its first call; static methods, per
 * class): two clients of two upstreams do not throttle each other. To share
 * one limit across instances, pass a `Semaphore` as `concurrency`. The
 * default `name` is the method's name.
 *
 * The method must return a promise (a decorator cannot change a method's
 * type); wrap sync functions with {@link withSafeAsync}.
 *
 * @param policy - `timeout`, `retry`, `concurrency`, `rateLimiter`, `breaker`, `name`, `signal`, `clock`.
 * @returns The decorator.
 * @throws `TypeError`/`RangeError` (synchronously, when the class is defined) for a bad policy, or when applied to anything but a method.
 * @category Wrapper
 * @example
 * ```ts
 * import { currentScope, safeAsync } from 'loopsafe';
 *
 * class Profiles {
 *   @safeAsync({ timeout: 5_000, concurrency: 4 })
 *   async load(id: string) {
 *     return `${id} loaded in scope ${currentScope()?.name}`;
 *   }
 * }
 * const profile = await new Profiles().load('ada'); // 'ada loaded in scope load'
 * ```
 */
export function safeAsync(policy?: SafeAsyncPolicy) {
  // Validated now, with a placeholder name: bad input fails where the decorator is written.
  readPolicy('safeAsync', policy, 'safeAsync');
  return function decorate<This, Args extends unknown[], R>(
    method: (this: This, ...args: Args) => Promise<R>,
    context: ClassMethodDecoratorContext<This, (this: This, ...args: Args) => Promise<R>>,
  ): (this: This, ...args: Args) => Promise<R> {
    if ((context as { kind?: unknown }).kind !== 'method' || typeof method !== 'function') {
      throw new TypeError(
        `Expected @safeAsync to decorate a method, got a ${String((context as { kind?: unknown }).kind)}`,
      );
    }
    const methodName = typeof context.name === 'symbol' ? (context.name.description ?? 'safeAsync') : context.name;
    const plan = readPolicy('safeAsync', policy, methodName);
    const shared = plan.semaphore;
    const permits = plan.permits;
    const perInstance = permits === undefined ? undefined : new WeakMap<object, Semaphore>();
    let unbound: Semaphore | undefined;
    const semaphoreFor = (self: unknown): Semaphore | undefined => {
      if (perInstance === undefined || permits === undefined) return shared;
      if ((typeof self !== 'object' && typeof self !== 'function') || self === null)
        return (unbound ??= new Semaphore(permits));
      let semaphore = perInstance.get(self);
      if (semaphore === undefined) perInstance.set(self, (semaphore = new Semaphore(permits)));
      return semaphore;
    };
    const replacement = function (this: This, ...args: Args): Promise<R> {
      return invoke(plan, semaphoreFor(this), method, this, args);
    };
    nameLike(replacement, method);
    return replacement;
  };
}
