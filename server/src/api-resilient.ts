/**
 * `GET /api/resilient?fault=…&failures=…&faultRate=…&retryAfter=…`: one call to
 * a flaky upstream through `retry` — backoff with jitter, a per-attempt
 * timeout clamped to the request deadline, the upstream's `Retry-After`
 * honoured, and a `RetryBudget` shared by every request so a sick upstream
 * gets a bounded share of extra load.
 */
import { currentScope, isAbortError, isTimeoutError, parseRetryAfter, retry } from 'loopsafe';
import { ClientClosedError, ShutdownError } from 'loopsafe/http';
import { upstreamErrorCode } from './api-fanout.js';
import { itemUrl, type AppContext } from './context.js';
import type { Reply } from './http-app.js';
import { getUpstreamJson, UpstreamError } from './upstream.js';
import type { Query } from './validate.js';

export const RESILIENT_PARAMS = [
  'fault',
  'failures',
  'faultRate',
  'retryAfter',
  'maxAttempts',
  'attemptTimeoutMs',
] as const;

interface RetryLog {
  attempt: number;
  error: string;
  delayMs: number;
}

/**
 * Calls the flaky upstream with retries; runs inside the request scope.
 * Attempt k is faulted when k ≤ `failures`, else with probability `faultRate`
 * (default 0.3 without `failures`, 0 with it).
 *
 * @returns 200 with the value and the retries made; 502 when every attempt
 *   failed or the budget ran out; 504 when the deadline came first.
 */
export async function resilient(ctx: AppContext, query: Query): Promise<Reply> {
  const fault = query.fault('fault', 'fail');
  const failures = query.int('failures', 0, 100, 0);
  const faultRate = query.rate('faultRate', query.has('failures') ? 0 : 0.3);
  const retryAfter = query.int('retryAfter', 0, 3_600, 1);
  const maxAttempts = query.int('maxAttempts', 1, 10, 4);
  const attemptTimeout = query.int('attemptTimeoutMs', 1, ctx.config.maxRequestTimeoutMs, 1_000);
  const retries: RetryLog[] = [];
  let attempts = 0;
  const started = performance.now();
  const report = (): Record<string, unknown> => ({
    attempts,
    retries,
    elapsedMs: Math.round(performance.now() - started),
    budget: ctx.retryBudget.snapshot(),
  });
  try {
    const value = await retry(
      async ({ attempt, signal }) => {
        attempts = attempt;
        const faulted = attempt <= failures || Math.random() < faultRate;
        const url = itemUrl(ctx, `flaky-${attempt}`, faulted ? fault : 'none', `retryAfter=${retryAfter}`);
        return getUpstreamJson(url, { signal, agent: ctx.agent }, ctx.callStats);
      },
      {
        name: 'flaky-upstream',
        // Just short of the request deadline, so a give-up is answered with the retries made.
        timeout: Math.max(0, (currentScope()?.remaining() ?? Number.POSITIVE_INFINITY) - 25),
        maxAttempts,
        attemptTimeout,
        backoff: { initialMs: 50, maxMs: 5_000, jitter: 'full' },
        budget: ctx.retryBudget,
        // 4xx other than 429 will not get better by asking again.
        shouldRetry: (error) => !(error instanceof UpstreamError && error.status < 500 && error.status !== 429),
        retryAfter: (error) => (error instanceof UpstreamError ? parseRetryAfter(error.retryAfter) : undefined),
        onRetry: ({ attempt, error, delayMs }) => {
          retries.push({
            attempt,
            error: isTimeoutError(error) ? 'attempt_timeout' : upstreamErrorCode(error),
            delayMs: Math.round(delayMs),
          });
        },
      },
    );
    return { status: 200, body: { value, ...report() } };
  } catch (error) {
    if (
      error instanceof ClientClosedError ||
      error instanceof ShutdownError ||
      (isAbortError(error) && !isTimeoutError(error))
    )
      throw error;
    if (isTimeoutError(error)) {
      return {
        status: 504,
        body: { error: 'deadline_exceeded', message: 'the deadline passed before an attempt succeeded', ...report() },
      };
    }
    const throttled = !ctx.retryBudget.canRetry() && attempts < maxAttempts;
    // A stable code for the client; the upstream's own text (addresses included) stays in the log.
    ctx.logger.warn('resilient_failed', { error, attempts });
    return {
      status: 502,
      body: {
        error: throttled ? 'retry_budget_exhausted' : 'upstream_failed',
        message: throttled ? 'the shared retry budget is spent' : 'every attempt failed',
        cause: isTimeoutError(error) ? 'attempt_timeout' : upstreamErrorCode(error),
        ...report(),
      },
    };
  }
}
