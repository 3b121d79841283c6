/**
 * Retries a budget refused, counted by `retry` and read by
 * `RetryBudget.snapshot()`: kept beside the class, not in it, so the budget
 * has no member that is not its API (and a budget of another copy of loopsafe
 * is counted too).
 *
 * @internal
 * @module
 */
const throttledRetries = /* @__PURE__ */ new WeakMap<object, number>();

/** Counts a retry `budget` refused. */
export function countThrottled(budget: object): void {
  throttledRetries.set(budget, (throttledRetries.get(budget) ?? 0) + 1);
}

/** The retries `budget` refused so far. */
export function throttledCount(budget: object): number {
  return throttledRetries.get(budget) ?? 0;
}
