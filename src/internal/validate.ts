/**
 * Argument checks shared by every public function. Each throws synchronously,
 * naming the argument and showing the value received.
 *
 * @internal
 * @module
 */
import type { Clock } from '../clock.js';
import type { RetryBudget } from '../retry-budget.js';

/** Renders a received value for an error message. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${String(value)}n`;
  if (typeof value === 'symbol' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`;
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return `Date(${Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString()})`;
  return 'an object';
}

/** A duration in milliseconds: a number, not NaN, not negative. `Infinity` is allowed. */
export function assertDuration(name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number') {
    throw new TypeError(`Expected \`${name}\` to be a number of milliseconds, got ${describe(value)}`);
  }
  if (!(value >= 0)) {
    throw new RangeError(`Expected \`${name}\` to be a non-negative number of milliseconds, got ${describe(value)}`);
  }
}

/** The period of a repeating timer: a finite number of milliseconds ≥ 1. */
export function assertInterval(name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number')
    throw new TypeError(`Expected \`${name}\` to be a number of milliseconds, got ${describe(value)}`);
  if (!(value >= 1 && Number.isFinite(value))) {
    throw new RangeError(`Expected \`${name}\` to be a finite number of milliseconds ≥ 1, got ${describe(value)}`);
  }
}

/**
 * Whether `value` is awaited as a promise: a thenable object or function — or
 * one whose `then` cannot even be read (a throwing getter), which `await`
 * turns into a rejection.
 */
export function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return false;
  try {
    return typeof (value as { then?: unknown }).then === 'function';
  } catch {
    return true;
  }
}

/** A count of concurrent holders: an integer ≥ 1, or `Infinity`. */
export function assertCount(name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number') {
    throw new TypeError(`Expected \`${name}\` to be an integer ≥ 1 or Infinity, got ${describe(value)}`);
  }
  if (value !== Number.POSITIVE_INFINITY && !(Number.isInteger(value) && value >= 1)) {
    throw new RangeError(`Expected \`${name}\` to be an integer ≥ 1 or Infinity, got ${describe(value)}`);
  }
}

/** A queue length limit: an integer ≥ 0, or `Infinity`. */
export function assertQueueLimit(name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number') {
    throw new TypeError(`Expected \`${name}\` to be an integer ≥ 0 or Infinity, got ${describe(value)}`);
  }
  if (value !== Number.POSITIVE_INFINITY && !(Number.isInteger(value) && value >= 0)) {
    throw new RangeError(`Expected \`${name}\` to be an integer ≥ 0 or Infinity, got ${describe(value)}`);
  }
}

/** An options bag: undefined, or a plain object whose keys are all known. */
export function assertOptions(fn: string, options: unknown, known: ReadonlySet<string>): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`Expected the options of ${fn}() to be an object, got ${describe(options)}`);
  }
  for (const key in options) {
    if (!known.has(key)) {
      throw new TypeError(`Unknown option \`${key}\` passed to ${fn}(); expected one of: ${[...known].join(', ')}`);
    }
  }
}

export function assertFunction(name: string, value: unknown): asserts value is (...args: never[]) => unknown {
  if (typeof value !== 'function') {
    throw new TypeError(`Expected \`${name}\` to be a function, got ${describe(value)}`);
  }
}

export function assertSignal(name: string, value: unknown): asserts value is AbortSignal | undefined {
  if (value === undefined) return;
  const signal: Partial<AbortSignal> | null = typeof value === 'object' ? value : null;
  if (
    signal === null ||
    typeof signal.aborted !== 'boolean' ||
    typeof signal.addEventListener !== 'function' ||
    typeof signal.removeEventListener !== 'function'
  ) {
    throw new TypeError(`Expected \`${name}\` to be an AbortSignal, got ${describe(value)}`);
  }
}

export function assertClock(name: string, value: unknown): asserts value is Clock | undefined {
  if (value === undefined) return;
  const clock: Partial<Clock> | null = typeof value === 'object' ? value : null;
  if (
    clock === null ||
    typeof clock.now !== 'function' ||
    typeof clock.setTimeout !== 'function' ||
    typeof clock.clearTimeout !== 'function'
  ) {
    throw new TypeError(
      `Expected \`${name}\` to be a clock with now(), setTimeout() and clearTimeout(), got ${describe(value)}`,
    );
  }
}

export function assertOptionalString(name: string, value: unknown): asserts value is string | undefined {
  if (value !== undefined && typeof value !== 'string') {
    throw new TypeError(`Expected \`${name}\` to be a string, got ${describe(value)}`);
  }
}

export function assertOptionalBoolean(name: string, value: unknown): asserts value is boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') {
    throw new TypeError(`Expected \`${name}\` to be a boolean, got ${describe(value)}`);
  }
}

/** A {@link RetryBudget}, recognised by shape, so two copies of loopsafe interoperate. */
export function assertRetryBudget(budget: unknown): asserts budget is RetryBudget {
  const candidate = budget as Partial<RetryBudget> | null;
  if (
    typeof budget !== 'object' ||
    candidate === null ||
    typeof candidate.canRetry !== 'function' ||
    typeof candidate.recordSuccess !== 'function' ||
    typeof candidate.recordFailure !== 'function'
  ) {
    throw new TypeError(`Expected \`budget\` to be a RetryBudget, got ${describe(budget)}`);
  }
}
