/**
 * Reading `retry`'s options: validated once into a plan, by `retry` for each
 * call and by `withSafeAsync` when it wraps a function.
 *
 * @internal
 * @module
 */
import { backoff, type BackoffFunction } from '../backoff.js';
import type { RetryOptions } from '../retry.js';
import { DEFAULT_BACKOFF_MAX_MS } from './backoff-defaults.js';
import {
  assertClock,
  assertDuration,
  assertFunction,
  assertOptionalString,
  assertOptions,
  assertRetryBudget,
  assertSignal,
  describe,
} from './validate.js';

const RETRY_OPTIONS = new Set([
  'maxAttempts',
  'backoff',
  'timeout',
  'attemptTimeout',
  'shouldRetry',
  'shouldRetryResult',
  'onRetry',
  'retryAfter',
  'budget',
  'signal',
  'clock',
  'name',
]);

const defaultBackoff = /* @__PURE__ */ backoff();

/** The validated options of one call. */
export type Plan = Readonly<
  Pick<RetryOptions, 'shouldRetry' | 'shouldRetryResult' | 'onRetry' | 'retryAfter' | 'budget'>
> & {
  readonly maxAttempts: number;
  readonly delay: BackoffFunction;
  readonly maxMs: number;
  /** `undefined` when attempts need no scope of their own. */
  readonly attemptTimeout: number | undefined;
};

const DEFAULT_PLAN: Plan = {
  maxAttempts: 3,
  delay: defaultBackoff,
  maxMs: DEFAULT_BACKOFF_MAX_MS,
  attemptTimeout: undefined,
};

/** Validates retry options without running anything (for wrappers that take them ahead of time, like `withSafeAsync`). */
export function assertRetryOptions<T>(options: RetryOptions<T> | undefined): void {
  readPlan(options);
}

export function readPlan<T>(options: RetryOptions<T> | undefined): Plan {
  assertOptions('retry', options, RETRY_OPTIONS);
  if (options === undefined) return DEFAULT_PLAN;
  const {
    maxAttempts = 3,
    timeout,
    attemptTimeout,
    shouldRetry,
    shouldRetryResult,
    onRetry,
    retryAfter,
    budget,
  } = options;
  if (typeof maxAttempts !== 'number')
    throw new TypeError(`Expected \`maxAttempts\` to be a number, got ${describe(maxAttempts)}`);
  if (!(Number.isInteger(maxAttempts) && maxAttempts >= 1) && maxAttempts !== Number.POSITIVE_INFINITY) {
    throw new RangeError(`Expected \`maxAttempts\` to be an integer >= 1 or Infinity, got ${describe(maxAttempts)}`);
  }
  if (timeout !== undefined) assertDuration('timeout', timeout);
  if (attemptTimeout !== undefined) assertDuration('attemptTimeout', attemptTimeout);
  if (shouldRetry !== undefined) assertFunction('shouldRetry', shouldRetry);
  if (shouldRetryResult !== undefined) assertFunction('shouldRetryResult', shouldRetryResult);
  if (onRetry !== undefined) assertFunction('onRetry', onRetry);
  if (retryAfter !== undefined) assertFunction('retryAfter', retryAfter);
  if (budget !== undefined) assertRetryBudget(budget);
  assertSignal('signal', options.signal);
  assertClock('clock', options.clock);
  assertOptionalString('name', options.name);
  const delay =
    typeof options.backoff === 'function'
      ? options.backoff
      : options.backoff === undefined
        ? defaultBackoff
        : backoff(options.backoff);
  return {
    maxAttempts,
    delay,
    maxMs: delay.maxMs ?? DEFAULT_BACKOFF_MAX_MS,
    attemptTimeout: attemptTimeout === Number.POSITIVE_INFINITY ? undefined : attemptTimeout,
    shouldRetry,
    // The plan judges values of any type: the caller's `T` is the type its attempts fulfil with.
    shouldRetryResult: shouldRetryResult as Plan['shouldRetryResult'],
    onRetry,
    retryAfter,
    budget,
  };
}
