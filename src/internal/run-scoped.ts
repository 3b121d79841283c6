/**
 * Runs a function inside a scope and races its result against the scope's
 * cancellation. Shared by withTimeout, withDeadline and safeWaitFor.
 *
 * @internal
 * @module
 */
import { rethrowAtCaller } from '../errors.js';
import { ambient, type ScopeNode } from './scope-node.js';
import { isPromiseLike } from './validate.js';

/** Read through a call: `fn` may have cancelled the scope, which flow analysis cannot see. */
function isCancelled(scope: ScopeNode): boolean {
  return scope._aborted;
}

/** Absorbs the late settlement of work that lost the race. */
function absorb(value: PromiseLike<unknown>): void {
  Promise.resolve(value).then(undefined, () => undefined);
}

/**
 * Calls `fn(scope)` with `scope` as the ambient scope. Settles with `fn`'s
 * outcome, or rejects with the scope's reason the moment it is cancelled or
 * expires, without waiting for `fn`. The scope is released before the
 * returned promise settles.
 */
export function runScoped<S extends ScopeNode, T>(scope: S, fn: (scope: S) => T | PromiseLike<T>): Promise<T> {
  if (scope._aborted) {
    scope._exit();
    return Promise.reject(scope._reason as Error).then(undefined, rethrowAtCaller);
  }
  let result: T | PromiseLike<T>;
  try {
    result = ambient.run(scope, fn, scope);
  } catch (error) {
    scope._exit();
    return Promise.reject(error as Error).then(undefined, rethrowAtCaller);
  }
  if (!isPromiseLike(result)) {
    scope._exit();
    return Promise.resolve(result);
  }
  if (isCancelled(scope)) {
    absorb(result);
    scope._exit();
    return Promise.reject(scope._reason as Error).then(undefined, rethrowAtCaller);
  }
  const work = result;
  return new Promise<T>((resolve, reject) => {
    scope._onAbort = reject;
    Promise.resolve(work).then(
      (value) => {
        scope._exit();
        resolve(value);
      },
      (error: unknown) => {
        scope._exit();
        reject(error);
      },
    );
  }).then(undefined, rethrowAtCaller);
}
