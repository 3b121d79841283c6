/**
 * Hono middleware: every request runs in its deadline scope. Import from
 * `loopsafe/hono`; `hono` (4) is an optional peer dependency. On Node it
 * runs under `@hono/node-server`; on Bun and Deno, client disconnects are
 * read from the request's own signal.
 *
 * @module hono
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MiddlewareHandler } from 'hono';
import { isTimeoutError, withTimeout, type Scope } from './index.js';
import {
  admit,
  answerFor,
  ClientClosedError,
  deadlineAnswer,
  readRequestScopeOptions,
  RequestLife,
  requestScopeName,
  type RequestScopeOptions,
  type ScopeAnswer,
  scopeOptions,
  watchClient,
} from './http/request-life.js';

/**
 * The context variables the middleware sets: `c.get('scope')`.
 *
 * @category HTTP
 */
export interface DeadlineVariables {
  /** The request's deadline scope. */
  scope: Scope;
}

/**
 * The Hono environment the middleware declares: its context variables.
 *
 * @category HTTP
 */
export interface DeadlineEnv {
  /** `c.get('scope')`: the request's deadline scope. */
  Variables: DeadlineVariables;
}

/** What `@hono/node-server` puts in `c.env`. */
interface NodeBindings {
  incoming?: IncomingMessage;
  outgoing?: ServerResponse;
}

function toResponse(answer: ScopeAnswer): Response {
  return new Response(JSON.stringify(answer.body), {
    status: answer.status,
    headers: { ...answer.headers, 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
  });
}

/**
 * Hono middleware that runs the rest of the chain inside the request's
 * deadline scope — the ambient scope there, also `c.get('scope')` — opened
 * when the request arrives, before its body is read, with the budget of its
 * deadline headers (`x-request-timeout`, `grpc-timeout`,
 * `x-envoy-expected-rq-timeout-ms`) clamped to `maxTimeoutMs`, else
 * `defaultTimeoutMs`. Register it first: `app.use(deadline())`.
 *
 * - A malformed deadline header is answered 400 `{"error":"bad_deadline_header",…}`.
 * - A `TimeoutError` escaping a handler, or the request's own deadline
 *   passing while the handler still runs, is answered 504
 *   `{"error":"deadline_exceeded","scope":…}` with the scope's name.
 * - The scope is cancelled with a `ClientClosedError` when the client goes
 *   away before the response finished: its upstream calls stop.
 * - Under `@hono/node-server`, `gracefulShutdown(server, …)` from
 *   `loopsafe/http` drains these scopes, answering 503 to the ones it cancels.
 *
 * @param options - {@link RequestScopeOptions}: `defaultTimeoutMs`, `maxTimeoutMs`, `headers`, `name`, `signal`, `clock`.
 * @returns The middleware.
 * @throws `TypeError`/`RangeError` synchronously for bad options.
 * @category HTTP
 * @example
 * ```ts
 * import { Hono } from 'hono';
 * import { safeSleep } from 'loopsafe';
 * import { deadline, type DeadlineVariables } from 'loopsafe/hono';
 *
 * const app = new Hono<{ Variables: DeadlineVariables }>();
 * app.use(deadline({ defaultTimeoutMs: 5_000, maxTimeoutMs: 30_000 }));
 * app.get('/slow', async (c) => {
 *   await safeSleep(10_000); // stops at the request's deadline
 *   return c.json({ done: true, scope: c.get('scope').name });
 * });
 * const reply = await app.request('/slow', { headers: { 'x-request-timeout': '50' } });
 * console.log(reply.status, await reply.json()); // 504 { error: 'deadline_exceeded', scope: 'GET /slow' }
 * ```
 */
export function deadline(options?: RequestScopeOptions): MiddlewareHandler<DeadlineEnv> {
  const config = readRequestScopeOptions('deadline', options);
  return async (c, next) => {
    const env = (c.env ?? {}) as NodeBindings;
    const res = env.outgoing;
    const budget = admit(config, res, c.req.raw.headers, false);
    if (typeof budget !== 'number') return toResponse(budget);
    const name = requestScopeName(config, c.req.method, c.req.path);
    const life = new RequestLife(res);
    const gone = (): void => {
      life.cancel(new ClientClosedError());
    };
    if (res !== undefined) watchClient(res, gone);
    else {
      // Bun, Deno and other fetch servers abort the request's signal when the client goes away.
      const clientSignal = c.req.raw.signal as AbortSignal | undefined;
      if (clientSignal?.aborted === true) gone();
      else clientSignal?.addEventListener('abort', gone, { once: true });
    }
    let answer: ScopeAnswer | null | undefined;
    let rest: Promise<void> | undefined;
    try {
      await withTimeout(
        budget,
        (scope) => {
          life.bind(scope);
          c.set('scope', scope);
          rest = next();
          return rest;
        },
        scopeOptions(config, name),
      );
    } catch (error) {
      answer = answerFor(error, name);
      if (answer === undefined) throw error;
      // The cancellation rejects the scope before the handler's own rejection has reached Hono's
      // error handler, which would then answer over us: let it (but no longer than a macrotask).
      await Promise.race([rest?.catch(() => {}), new Promise((resolve) => setTimeout(resolve, 0))]);
    } finally {
      life.end();
      if (res === undefined) (c.req.raw.signal as AbortSignal | undefined)?.removeEventListener('abort', gone);
    }
    // Hono's error handler has answered an escaped error already (500): a TimeoutError is ours to answer.
    if (answer === undefined && isTimeoutError(c.error)) answer = deadlineAnswer(c.error, name);
    if (answer === undefined) return;
    c.res = undefined;
    // Nobody is left to read the answer to a client that went away; Hono still wants a response.
    c.res = answer === null ? new Response(null, { status: 499 }) : toResponse(answer);
  };
}
