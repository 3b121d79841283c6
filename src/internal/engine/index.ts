/**
 * The engine, as the primitives see it: two verbs and the ambient scope.
 *
 * 1. **Open a child scope and run a function in it**: {@link openScope} (a
 *    child of the ambient scope) or {@link openChild} (of a given one), then
 *    {@link runScoped} (a promise of the function's outcome, rejected the
 *    moment the scope is cancelled) or {@link enterScope} (the outcome as it
 *    comes, for a primitive that collects outcomes itself, as a gather does).
 * 2. **Wait on one leaf operation**: a subclass of {@link LeafWait}, or
 *    {@link waitBounded} for a promise that must not outlive the scope.
 *
 * Primitives never touch the tree's state: it is `#private` to
 * `node.ts`. See `ARCHITECTURE.md`.
 *
 * @internal
 * @module
 */
import { systemClock, type Clock } from '../../clock.js';
import { createContextStorage, type ContextStorage } from '../platform.js';
import { absorb, rejectAtCaller, rejectedAtCaller, settledElsewhere } from '../stacks.js';
import { LeafWait } from './leaf.js';
import { ScopeNode, type TimeoutErrorFactory } from './scope-node.js';
import { traceScope, tracingScopes } from './trace.js';

export { LeafWait } from './leaf.js';
export { ScopeNode, setStackCapture } from './scope-node.js';
export { traceScope, tracingScopes } from './trace.js';

/**
 * The ambient scope. Entered with `run` once per scope, never with
 * `enterWith`. An `AsyncLocalStorage` on server runtimes; never set in the
 * browser build.
 */
const ambient = /* @__PURE__ */ createContextStorage<ScopeNode>();

/** The ambient scope, if any. */
export function ambientScope(): ScopeNode | undefined {
  return ambient.getStore();
}

/** The clock an operation runs on: the one it was given, else its scope's, else the system clock. */
export function clockFor(explicit: Clock | undefined, scope: ScopeNode | undefined): Clock {
  return explicit ?? scope?.clock ?? systemClock;
}

/** How to open a scope. */
export interface OpenOptions {
  readonly name: string;
  /** Milliseconds from now; `Infinity` (the default) for no deadline of its own. */
  readonly timeoutMs?: number | undefined;
  /** An absolute deadline instead: a time on the scope's clock, or a `Date` (converted once, now). */
  readonly deadline?: number | Date | undefined;
  readonly signal?: AbortSignal | undefined;
  /** @defaultValue the parent's clock, else the system clock */
  readonly clock?: Clock | undefined;
  readonly timeoutError?: TimeoutErrorFactory | undefined;
  /**
   * Whether `name` was given by the caller (a `name` option, the function's own name), not a
   * primitive's default: `loopsafe/otel` makes a span for named scopes only.
   * @defaultValue `true`
   */
  readonly named?: boolean | undefined;
}

/** Opens a child of the ambient scope. */
export function openScope(options: OpenOptions): ScopeNode {
  return openChild(ambient.getStore(), options);
}

/** Opens a child of `parent` (or a root scope). */
export function openChild(parent: ScopeNode | undefined, options: OpenOptions): ScopeNode {
  const clock = options.clock ?? parent?.clock ?? systemClock;
  const now = clock.now();
  const given = options.deadline;
  let deadline: number;
  let timeoutMs: number;
  if (given === undefined) {
    timeoutMs = options.timeoutMs ?? Number.POSITIVE_INFINITY;
    deadline = now + timeoutMs;
  } else {
    deadline = given instanceof Date ? now + (given.getTime() - Date.now()) : given;
    timeoutMs = Math.max(0, deadline - now);
  }
  return new ScopeNode(
    options.name,
    clock,
    parent,
    deadline,
    timeoutMs,
    now,
    options.signal,
    options.timeoutError,
    options.named ?? true,
  ).open();
}

/**
 * Calls `fn(arg)` with `scope` as the ambient scope. Returns a synchronous
 * result as it is (and throws a synchronous throw); a thenable is adopted
 * inside the scope — a lazy thenable's `then` runs there — and returned as a
 * native promise.
 */
export function enterScope<A, R>(
  scope: ScopeNode | undefined,
  fn: (arg: A) => R | PromiseLike<R>,
  arg: A,
): R | Promise<R> {
  const storage = ambient as ContextStorage<ScopeNode | undefined>;
  // `fn` is called straight from `run` (few frames per level: a user's synchronous recursion
  // through loopsafe calls goes as deep as it can); only a thenable that is not a native
  // promise re-enters the scope, to be adopted there.
  const result = storage.run(scope, fn, arg);
  if (result instanceof Promise || !isObjectLike(result)) return result as R | Promise<R>;
  return storage.run(scope, adopt<R>, result);
}

function isObjectLike(value: unknown): value is object {
  return (typeof value === 'object' && value !== null) || typeof value === 'function';
}

/**
 * A function's result as the engine handles it: a value as it is, a native
 * promise as it is, any other thenable adopted into a native promise — its
 * `then` called now, in the current async context (a lazy thenable starts its
 * work there). Reading `then` may throw: that is the function's failure.
 */
export function adopt<R>(result: R | PromiseLike<R>): R | Promise<R> {
  if (result instanceof Promise) return result as Promise<R>;
  if (isObjectLike(result)) {
    // Reading `then` may throw: that is the function's failure, as `await` would see it.
    const then = (result as { then?: unknown }).then;
    if (typeof then === 'function') {
      return new Promise<R>((resolve, reject) => {
        (then as (onFulfilled: (value: R) => void, onRejected: (reason: unknown) => void) => void).call(
          result,
          resolve,
          reject,
        );
      });
    }
  }
  return result as R;
}

/**
 * Runs `fn(scope)` as the owner of `scope`. Settles with `fn`'s outcome, or
 * rejects with the scope's reason the moment it is cancelled or expires,
 * without waiting for `fn` (whose late outcome is absorbed). The scope is left
 * before the promise settles; a scope cancelled while a synchronous `fn` ran
 * rejects, as an async one does.
 *
 * `fn`'s promise reaches the returned one through promise links only, never a
 * callback that calls `resolve`: an error thrown by the work keeps the
 * caller's async frames.
 *
 * Traced on `loopsafe:scope` (see `trace.ts`) when `traced`: by default,
 * whether anything listens there.
 */
export function runScoped<T>(
  scope: ScopeNode,
  fn: (scope: ScopeNode) => T | PromiseLike<T>,
  // The tracing hook: one read when nobody listens on `loopsafe:scope` (a caller that has read it already passes it).
  traced: boolean = tracingScopes(),
): Promise<T> {
  // Traced, it runs itself untraced inside the trace: the untraced path has no extra call.
  if (traced) return traceScope(scope, () => runScoped(scope, fn, false));
  if (scope.cancelled) {
    scope.exit();
    return rejectedAtCaller(scope.reason);
  }
  let resolve!: (value: T | PromiseLike<T>) => void;
  let reject!: (reason: unknown) => void;
  const outcome = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // From here a cancellation rejects `outcome` and decides it, even while the
  // rejection is still taking the caller's stack: what `fn` does later is absorbed.
  scope.settles(resolve, reject);
  let result: T | Promise<T>;
  try {
    const storage = ambient as ContextStorage<ScopeNode | undefined>;
    const returned = storage.run(scope, fn, scope);
    result =
      returned instanceof Promise || !isObjectLike(returned) ? (returned as T) : storage.run(scope, adopt<T>, returned);
  } catch (error) {
    scope.exit();
    if (!scope.decided) rejectAtCaller(resolve, reject, error);
    return outcome;
  }
  if (!(result instanceof Promise)) {
    scope.exit();
    if (!scope.decided) resolve(result);
    return outcome;
  }
  if (scope.decided) {
    absorb(result);
    scope.exit();
    return outcome;
  }
  result
    .then(
      (value) => {
        scope.exit();
        return scope.decided ? settledElsewhere() : value;
      },
      (error: unknown) => {
        scope.exit();
        if (scope.decided) return settledElsewhere();
        throw error;
      },
    )
    .then(resolve, reject);
  return outcome;
}

/** A promise that must not outlive a scope or a signal. */
class BoundedWait<T> extends LeafWait<T> {
  protected onDeadline(): void {
    // No deadline of its own: its scope's expiry reaches it through the tree.
  }

  start(work: Promise<T>): Promise<T> {
    if (this.begin()) this.follow(work);
    else absorb(work);
    return this.promise;
  }
}

/**
 * Waits for `work`, but no longer than `scope` (default: the ambient one) and
 * `signal` allow: for awaiting a user's hook or item inside a primitive, so a
 * promise that never settles cannot hold the primitive past its deadline.
 */
export function waitBounded<T>(
  work: Promise<T>,
  scope: ScopeNode | undefined = ambient.getStore(),
  signal?: AbortSignal,
): Promise<T> {
  if (scope === undefined && signal === undefined) return work;
  return new BoundedWait<T>(scope?.clock ?? systemClock, scope, signal, Number.POSITIVE_INFINITY).start(work);
}

/** The open scopes (owners running, overdue ones included), oldest first. */
export function openScopes(): ScopeNode[] {
  return ScopeNode.openScopes().sort((a, b) => a.createdAt - b.createdAt);
}
