/**
 * The TimeoutError a scope or a wait rejects with when its own deadline
 * passes: made without a stack, which it takes where the caller awaits.
 *
 * @internal
 * @module
 */
import { TimeoutError } from '../../errors.js';
import { createDeferred } from '../stacks.js';

export function newTimeoutError(scopeName: string, timeoutMs: number): TimeoutError {
  return createDeferred(() => new TimeoutError(undefined, { scopeName, timeoutMs }));
}
