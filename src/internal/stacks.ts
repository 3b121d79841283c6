/**
 * Errors that loopsafe creates itself (a scope's `TimeoutError`, a gather's
 * `GatherError`) are made without a stack — taking one costs more than the
 * rest of an operation — and take it later, at the place the caller awaits.
 * This module holds that mechanism, and reads thrown values defensively: a
 * value with a throwing getter, or one `String()` cannot convert, must never
 * make an operation throw in the middle of settling.
 *
 * @internal
 * @module
 */

/** Errors created by loopsafe whose stack has not been taken yet. */
const pendingStacks = new WeakSet<object>();

/**
 * Creates an error without taking a stack trace; {@link rejectAtCaller} (or
 * {@link takeStack}) takes it later, where the caller awaits.
 */
export function createDeferred<E extends Error>(create: () => E): E {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  let error: E;
  try {
    error = create();
  } finally {
    Error.stackTraceLimit = limit;
  }
  pendingStacks.add(error);
  return error;
}

/**
 * Takes the stack of a loopsafe error that has none yet, here; anything else
 * is left alone. Returns whether it did.
 */
export function takeStack(error: unknown): boolean {
  if (!pendingStacks.delete(error as object)) return false;
  Error.captureStackTrace(error as object, takeStack);
  return true;
}

/** A rejection handler that takes a pending stack at this point of the promise chain, then rethrows. */
function rethrowHere(error: unknown): never {
  if (pendingStacks.delete(error as object)) Error.captureStackTrace(error as object, rethrowHere);
  throw error;
}

/**
 * Rejects a promise (through its native `resolve`/`reject`) with `reason`. A
 * loopsafe error without a stack takes it one reaction later, in a handler
 * whose promise chain leads — through native resolve functions only — to the
 * promise the caller awaits, so the stack shows the caller's async frames
 * (`at async handler`). Any other reason is passed through at once.
 */
export function rejectAtCaller(
  resolve: (value: never) => void,
  reject: (reason: unknown) => void,
  reason: unknown,
): void {
  if (pendingStacks.has(reason as object)) Promise.reject(reason).then(undefined, rethrowHere).then(resolve, reject);
  else reject(reason);
}

/** A promise rejected with `reason`, taking a pending stack where it is awaited. */
export function rejectedAtCaller<T>(reason: unknown): Promise<T> {
  return pendingStacks.has(reason as object)
    ? Promise.reject(reason).then(undefined, rethrowHere)
    : Promise.reject(reason);
}

/** Attaches a handler to a promise that lost a race, so its late rejection is never unhandled. */
export function absorb(promise: Promise<unknown>): void {
  promise.then(undefined, ignore);
}

function ignore(): undefined {
  return undefined;
}

/**
 * A short, safe rendering of a thrown value for a message: an Error's
 * message, else `String(value)`; never throws (a getter that throws, an object
 * with no prototype, a revoked Proxy).
 */
export function describeThrown(value: unknown): string {
  try {
    if (value instanceof Error) {
      const message: unknown = value.message;
      return String(message);
    }
    return String(value);
  } catch {
    try {
      return Object.prototype.toString.call(value);
    } catch {
      return 'a value that cannot be printed';
    }
  }
}

/**
 * A promise that never settles, for a promise chain whose outcome was already
 * decided elsewhere (a cancellation won): the late outcome stops here. A fresh
 * one each time, so nothing accumulates on it; it is garbage with its chain.
 */
export function settledElsewhere(): Promise<never> {
  return new Promise<never>(neverSettle);
}

function neverSettle(): void {
  // Left pending on purpose.
}
