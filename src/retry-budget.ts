/**
 * `RetryBudget`: gRPC-style retry throttling (gRFC A6), a token bucket shared
 * across calls so that a sick dependency gets a bounded share of extra load.
 *
 * @module
 */
import { throttledCount } from './internal/retry-throttle.js';
import { assertOptions, describe } from './internal/validate.js';

/**
 * Options for {@link RetryBudget}.
 *
 * @category Backoff and retry
 */
export interface RetryBudgetOptions {
  /**
   * Size of the bucket; it starts full. Retries stop while the tokens are at or below half of it.
   * @defaultValue `10`
   */
  maxTokens?: number | undefined;
  /**
   * Tokens earned back by each successful attempt (kept to 3 decimals, as gRPC does).
   * @defaultValue `0.1`
   */
  tokenRatio?: number | undefined;
}

/**
 * A point-in-time view of a {@link RetryBudget}, for metrics.
 *
 * @category Backoff and retry
 */
export interface RetryBudgetSnapshot {
  /** Tokens in the bucket now. */
  readonly tokens: number;
  /** The bucket's size. */
  readonly maxTokens: number;
  /** Tokens a success gives back. */
  readonly tokenRatio: number;
  /** Whether a retry would be allowed now (`tokens > maxTokens / 2`). */
  readonly canRetry: boolean;
  /** Successful attempts recorded. */
  readonly successes: number;
  /** Failed attempts recorded. */
  readonly failures: number;
  /** Retries refused because the budget was exhausted. */
  readonly throttled: number;
}

const BUDGET_OPTIONS = new Set(['maxTokens', 'tokenRatio']);

/** Tokens are counted in thousandths, so adding 0.1 ten times gives exactly 1. */
const MILLI = 1000;

/**
 * A retry budget shared across calls (gRFC A6 retry throttling): each failed
 * attempt takes one token, each successful attempt gives back `tokenRatio`,
 * and retries are allowed only while `tokens > maxTokens / 2`. First attempts
 * are never throttled, so under a total outage the extra load a client adds
 * is bounded by about `maxTokens / 2` retries plus `tokenRatio` per success —
 * at most ~1.1× the calls plus `maxTokens` attempts with the defaults.
 *
 * Pass the same budget to every {@link retry} call that targets one dependency.
 * `retry` records an attempt's failure only when `shouldRetry` calls it
 * retryable, and never records an outside cancellation.
 *
 * @category Backoff and retry
 * @example
 * ```ts
 * import { retry, RetryBudget } from 'loopsafe';
 *
 * const budget = new RetryBudget({ maxTokens: 10, tokenRatio: 0.1 });
 * const down = () => Promise.reject(new Error('503'));
 * for (let call = 0; call < 20; call++) {
 *   await retry(down, { budget, maxAttempts: 5, backoff: () => 0 }).catch(() => undefined);
 * }
 * console.log(budget.snapshot().failures); // 24: 20 first attempts + 4 retries, not 100
 * console.log(budget.canRetry()); // false
 * ```
 */
export class RetryBudget {
  /** The bucket's size; retries are allowed while more than half of it is left. */
  readonly maxTokens: number;
  /** Tokens each successful attempt gives back. */
  readonly tokenRatio: number;
  #milliTokens: number;
  readonly #maxMilli: number;
  readonly #ratioMilli: number;
  #successes = 0;
  #failures = 0;

  /**
   * @param options - `maxTokens`, `tokenRatio`.
   * @throws `TypeError`/`RangeError` (synchronously) for an unknown option, a `maxTokens` that is
   *   not a finite number > 0, or a `tokenRatio` that is not a finite number ≥ 0.001.
   */
  constructor(options?: RetryBudgetOptions) {
    assertOptions('RetryBudget', options, BUDGET_OPTIONS);
    // `null` is a bad value, not "the default": only a missing option defaults.
    const maxTokens = options?.maxTokens === undefined ? 10 : options.maxTokens;
    const tokenRatio = options?.tokenRatio === undefined ? 0.1 : options.tokenRatio;
    if (typeof maxTokens !== 'number')
      throw new TypeError(`Expected \`maxTokens\` to be a number, got ${describe(maxTokens)}`);
    if (!(maxTokens > 0 && Number.isFinite(maxTokens))) {
      throw new RangeError(`Expected \`maxTokens\` to be a finite number > 0, got ${describe(maxTokens)}`);
    }
    if (typeof tokenRatio !== 'number')
      throw new TypeError(`Expected \`tokenRatio\` to be a number, got ${describe(tokenRatio)}`);
    if (!(tokenRatio >= 0.001 && Number.isFinite(tokenRatio))) {
      throw new RangeError(`Expected \`tokenRatio\` to be a finite number >= 0.001, got ${describe(tokenRatio)}`);
    }
    this.maxTokens = maxTokens;
    this.tokenRatio = tokenRatio;
    this.#maxMilli = Math.round(maxTokens * MILLI);
    this.#ratioMilli = Math.round(tokenRatio * MILLI);
    this.#milliTokens = this.#maxMilli;
  }

  /** Tokens in the bucket now. */
  get tokens(): number {
    return this.#milliTokens / MILLI;
  }

  /**
   * Whether a retry is allowed now: `tokens > maxTokens / 2`.
   *
   * @returns `true` while the budget allows retries.
   */
  canRetry(): boolean {
    return this.#milliTokens * 2 > this.#maxMilli;
  }

  /** Records a successful attempt: gives back `tokenRatio` tokens (up to `maxTokens`). */
  recordSuccess(): void {
    this.#successes++;
    this.#milliTokens = Math.min(this.#maxMilli, this.#milliTokens + this.#ratioMilli);
  }

  /** Records a failed attempt: takes one token (down to 0). */
  recordFailure(): void {
    this.#failures++;
    this.#milliTokens = Math.max(0, this.#milliTokens - MILLI);
  }

  /**
   * A point-in-time view for metrics.
   *
   * @returns Tokens, settings, whether a retry is allowed, and the counters.
   */
  snapshot(): RetryBudgetSnapshot {
    return {
      tokens: this.tokens,
      maxTokens: this.maxTokens,
      tokenRatio: this.tokenRatio,
      canRetry: this.canRetry(),
      successes: this.#successes,
      failures: this.#failures,
      throttled: throttledCount(this),
    };
  }
}
