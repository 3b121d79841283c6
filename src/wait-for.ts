/**
 * `safeWaitFor`: bound a promise, or a function of a signal, by a timeout.
 *
 * @module
 */
import type { Clock } from './clock.js';
import type { TimeoutError } from './errors.js';
import {
  ambientScope,
  clockFor,
  enterScope,
  LeafWait,
  openScope,
  runScoped,
  waitBounded,
  type ScopeNode,
} from './internal/engine/index.js';
import { newTimeoutError } from './internal/engine/timeout-error.js';
import { publishTimeout } from './internal/publish.js';
import { absorb } from './internal/stacks.js';
import {
  assertClock,
  assertDuration,
  assertFunction,
  assertOptionalString,
  assertOptions,
  assertSignal,
  describe,
  isPromiseLike,
} from './internal/validate.js';

/**
 * Options for {@link safeWaitFor}.
 *
 * @category Primitives
 */
export interface WaitForOptions<F = never> {
  /**
   * Milliseconds to wait; `Infinity` waits until `signal` or the ambient scope ends it.
   * @defaultValue `Infinity`
   */
  timeout?: number | undefined;
  /** Aborts the wait; it rejects with the signal's reason (`===`). */
  signal?: AbortSignal | undefined;
  /**
   * Called when this wait's own timeout passes; its result (or rejection)
   * becomes the outcome instead of the {@link TimeoutError}. Not called when
   * `signal` aborts or an enclosing deadline passes first.
   */
  fallback?: ((error: TimeoutError) => F | PromiseLike<F>) | undefined;
  /**
   * Names the wait in its {@link TimeoutError}.
   * @defaultValue the task function's name, else `'safeWaitFor'`
   */
  name?: string | undefined;
  /** @defaultValue the ambient scope's clock, else {@link systemClock} */
  clock?: Clock | undefined;
}

/**
 * Work for {@link safeWaitFor}: a promise (or thenable), or a function that
 * receives a signal aborting at the timeout and returns a value or a promise.
 *
 * @category Primitives
 */
export type WaitForTask<T> = PromiseLike<T> | ((signal: AbortSignal) => T | PromiseLike<T>);

const WAIT_FOR_OPTIONS = new Set(['timeout', 'signal', 'fallback', 'name', 'clock']);

/**
 * Waits for `task` for at most `timeout` milliseconds.
 *
 * - A promise is bounded: at the timeout the returned promise rejects with a
 *   {@link TimeoutError} (or settles with `fallback`'s result); the promise's
 *   late settlement is absorbed, never an `unhandledRejection`.
 * - A function `(signal) => work` runs inside a child scope of the ambient one,
 *   and its `signal` aborts at the timeout — so the work itself stops, not just
 *   the wait. Nested loopsafe calls inside it see that scope.
 * - `signal` aborting rejects with its reason (`===`); an enclosing scope's
 *   deadline rejects with that scope's {@link TimeoutError}.
 * - When the task settles first, the timer is cleared at once: an operation
 *   that has settled never keeps the process alive.
 *
 * @param task - A promise, or a function of an `AbortSignal`.
 * @param timeoutOrOptions - The timeout in ms, or `{ timeout, signal, fallback, name, clock }`.
 * @returns The task's value, or `fallback`'s.
 * @throws {@link TimeoutError} (rejection) when the timeout passes and there is no `fallback`.
 * @throws `TypeError`/`RangeError` (synchronously) for a bad task, timeout or option.
 * @category Primitives
 * @example
 * ```ts
 * import { safeWaitFor } from 'loopsafe';
 *
 * // Bound a promise you cannot cancel:
 * const value = await safeWaitFor(Promise.resolve(42), 1_000);
 * console.log(value); // 42
 *
 * // Bound work that can be cancelled, with a fallback:
 * const cached = await safeWaitFor(
 *   (signal) => new Promise<string>((resolve, reject) => {
 *     const timer = setTimeout(() => resolve('fresh'), 5_000);
 *     signal.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason); });
 *   }),
 *   { timeout: 20, fallback: () => 'cached', name: 'price-lookup' },
 * );
 * console.log(cached); // 'cached'
 * ```
 */
export function safeWaitFor<T, F = never>(
  task: WaitForTask<T>,
  timeoutOrOptions?: number | WaitForOptions<F>,
): Promise<Awaited<T> | Awaited<F>> {
  let timeout = Number.POSITIVE_INFINITY;
  let options: WaitForOptions<F> | undefined;
  if (typeof timeoutOrOptions === 'number') {
    assertDuration('timeout', timeoutOrOptions);
    timeout = timeoutOrOptions;
  } else {
    assertOptions('safeWaitFor', timeoutOrOptions, WAIT_FOR_OPTIONS);
    options = timeoutOrOptions;
    if (options !== undefined) {
      if (options.timeout !== undefined) {
        assertDuration('timeout', options.timeout);
        timeout = options.timeout;
      }
      assertSignal('signal', options.signal);
      assertClock('clock', options.clock);
      assertOptionalString('name', options.name);
      if (options.fallback !== undefined) assertFunction('fallback', options.fallback);
    }
  }
  if (typeof task === 'function') return waitForFunction(task, timeout, options);
  if (!(task instanceof Promise) && !isPromiseLike(task)) {
    throw new TypeError(`Expected \`task\` to be a promise or a function of an AbortSignal, got ${describe(task)}`);
  }
  return waitForPromise(task, timeout, options);
}

type Fallback<F> = (error: TimeoutError) => F | PromiseLike<F>;

/** A wait for a promise: its own deadline is a timeout (or the fallback's turn). */
class PromiseWait<T> extends LeafWait<T> {
  readonly #name: string;
  readonly #timeoutMs: number;
  readonly #scope: ScopeNode | undefined;
  readonly #fallback: Fallback<T> | undefined;

  constructor(
    clock: Clock,
    scope: ScopeNode | undefined,
    signal: AbortSignal | undefined,
    name: string,
    timeoutMs: number,
    fallback: Fallback<T> | undefined,
  ) {
    super(clock, scope, signal, timeoutMs);
    this.#name = name;
    this.#timeoutMs = timeoutMs;
    this.#scope = scope;
    this.#fallback = fallback;
  }

  start(task: PromiseLike<T>): Promise<T> {
    // A thenable is adopted as `await` would adopt it; a native promise as it is.
    const work = task instanceof Promise ? (task as Promise<T>) : Promise.resolve(task);
    if (this.begin()) this.follow(work);
    else absorb(work);
    return this.promise;
  }

  protected onDeadline(): void {
    const error = newTimeoutError(this.#name, this.#timeoutMs);
    publishTimeout(this.#name, this.#timeoutMs, error, undefined);
    const fallback = this.#fallback;
    if (fallback === undefined) {
      this.fail(error);
      return;
    }
    // The fallback runs in the caller's scope and stays bounded by it: the
    // wait stays in the tree until the fallback's outcome settles it.
    let result: T | Promise<T>;
    try {
      result = enterScope(this.#scope, fallback, error);
    } catch (fallbackError) {
      this.fail(fallbackError);
      return;
    }
    if (result instanceof Promise) this.follow(result);
    else this.fulfil(result);
  }
}

function waitForPromise<T, F>(
  task: PromiseLike<T>,
  timeout: number,
  options: WaitForOptions<F> | undefined,
): Promise<Awaited<T> | Awaited<F>> {
  type R = Awaited<T> | Awaited<F>;
  const scope = ambientScope();
  const wait = new PromiseWait<R>(
    clockFor(options?.clock, scope),
    scope,
    options?.signal,
    options?.name ?? 'safeWaitFor',
    timeout,
    options?.fallback as Fallback<R> | undefined,
  );
  return wait.start(task as PromiseLike<R>);
}

function waitForFunction<T, F>(
  task: (signal: AbortSignal) => T | PromiseLike<T>,
  timeout: number,
  options: WaitForOptions<F> | undefined,
): Promise<Awaited<T> | Awaited<F>> {
  const enclosing = ambientScope();
  const scope = openScope({
    name: options?.name ?? (task.name || 'safeWaitFor'),
    named: options?.name !== undefined || task.name !== '',
    timeoutMs: timeout,
    signal: options?.signal,
    clock: options?.clock,
  });
  const outcome = runScoped(scope, (s) => task(s.signal));
  const fallback = options?.fallback;
  if (fallback === undefined) return outcome as Promise<Awaited<T>>;
  return outcome.then(undefined, (error: unknown) => {
    // Only this wait's own timeout falls back; a caller abort or an enclosing deadline does not.
    if (!(scope.timedOut && error === scope.reason)) throw error;
    const result = enterScope(enclosing, fallback, error as TimeoutError);
    // The fallback is bounded by what still bounds the caller.
    return result instanceof Promise ? waitBounded(result, enclosing, options?.signal) : result;
  }) as Promise<Awaited<T> | Awaited<F>>;
}
