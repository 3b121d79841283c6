/**
 * Express middleware: every request runs in its deadline scope. Import from
 * `loopsafe/express`; `express` (5) is an optional peer dependency. The
 * middleware is typed on `node:http`, so it needs no `@types/express`.
 *
 * @module express
 */
import { AsyncResource } from 'node:async_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isTimeoutError, type Scope } from './index.js';
import {
  admit,
  deadlineAnswer,
  hasBody,
  readRequestScopeOptions,
  requestScopeName,
  type RequestScopeOptions,
  runForResponse,
  sendAnswer,
} from './http/request-life.js';

declare global {
  // Express's own request type is declared in this global namespace (by @types/express).
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The request's deadline scope (set by `loopsafe/express`). */
      scope?: Scope | undefined;
    }
  }
}

/**
 * What the middleware reads and sets on an Express request, beside `node:http`'s own.
 *
 * @category HTTP
 */
export interface DeadlineRequestFields {
  /** The request's deadline scope, set by {@link deadline}. */
  scope?: Scope | undefined;
  /** The URL as it arrived (Express's own), before any router rewrote `url`. */
  originalUrl?: string;
}

/**
 * An Express request as the middleware sees it: a `node:http` request with {@link DeadlineRequestFields}.
 *
 * @category HTTP
 */
export type DeadlineRequest = IncomingMessage & DeadlineRequestFields;

/**
 * Express middleware `(req, res, next)`.
 *
 * @category HTTP
 */
export type DeadlineMiddleware = (req: DeadlineRequest, res: ServerResponse, next: (error?: unknown) => void) => void;

/**
 * Express error middleware `(error, req, res, next)`.
 *
 * @category HTTP
 */
export type DeadlineErrorMiddleware = (
  error: unknown,
  req: DeadlineRequest,
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void;

/**
 * Puts every event `req` emits into the request scope's async context, so a
 * body parser's `next()` (called from the stream's `end`) runs the rest of the
 * stack inside the scope. Only this request object is touched.
 */
function emitInScope(req: IncomingMessage): void {
  const run = AsyncResource.bind((fn: () => boolean) => fn());
  const emit = req.emit.bind(req) as (event: string | symbol, ...args: unknown[]) => boolean;
  req.emit = ((event: string | symbol, ...args: unknown[]) => run(() => emit(event, ...args))) as typeof req.emit;
}

/**
 * Express middleware that runs the rest of the stack inside the request's
 * deadline scope — the ambient scope there, also `req.scope` — opened when
 * the request arrives, before its body is read, with the budget of its
 * deadline headers (`x-request-timeout`, `grpc-timeout`,
 * `x-envoy-expected-rq-timeout-ms`) clamped to `maxTimeoutMs`, else
 * `defaultTimeoutMs`. Register it first: `app.use(deadline())`.
 *
 * - A malformed deadline header is answered 400 `{"error":"bad_deadline_header",…}`.
 * - The request's own deadline passing while the handler still runs is
 *   answered 504 `{"error":"deadline_exceeded","scope":…}` at that moment.
 *   Express hands any other escaped error to its error middleware: add
 *   {@link deadlineErrors} after your routes to answer every `TimeoutError` 504 too.
 * - The scope is cancelled with a `ClientClosedError` when the client goes
 *   away before the response finished: its upstream calls stop.
 * - `gracefulShutdown(server, …)` from `loopsafe/http` drains these scopes,
 *   answering 503 to the ones it cancels.
 *
 * @param options - {@link RequestScopeOptions}: `defaultTimeoutMs`, `maxTimeoutMs`, `headers`, `name`, `signal`, `clock`.
 * @returns The middleware.
 * @throws `TypeError`/`RangeError` synchronously for bad options.
 * @category HTTP
 * @example
 * ```ts
 * import express from 'express';
 * import { safeSleep } from 'loopsafe';
 * import { deadline, deadlineErrors } from 'loopsafe/express';
 *
 * const app = express();
 * app.use(deadline({ defaultTimeoutMs: 5_000, maxTimeoutMs: 30_000 }));
 * app.get('/slow', async (_req, res) => {
 *   await safeSleep(10_000); // stops at the request's deadline
 *   res.json({ done: true });
 * });
 * app.use(deadlineErrors());
 *
 * const server = app.listen(0, '127.0.0.1');
 * await new Promise((resolve) => server.once('listening', resolve));
 * const { port } = server.address() as { port: number };
 * const reply = await fetch(`http://127.0.0.1:${port}/slow`, { headers: { 'x-request-timeout': '50' } });
 * console.log(reply.status, await reply.json()); // 504 { error: 'deadline_exceeded', scope: 'GET /slow' }
 * server.close();
 * ```
 */
export function deadline(options?: RequestScopeOptions): DeadlineMiddleware {
  const config = readRequestScopeOptions('deadline', options);
  return (req, res, next) => {
    const budget = admit(config, res, req.headers, true);
    if (typeof budget !== 'number') {
      sendAnswer(res, budget);
      return;
    }
    const name = requestScopeName(config, req.method, req.originalUrl ?? req.url);
    const withBody = hasBody(req.headers);
    runForResponse(
      res,
      config,
      budget,
      name,
      (scope) => {
        req.scope = scope;
        if (withBody) emitInScope(req);
        next();
      },
      (error, answer) => {
        // The outside signal's own reason goes to Express's error handling.
        if (answer === undefined) next(error);
        else if (answer !== null) sendAnswer(res, answer);
      },
    );
  };
}

/**
 * Express error middleware that answers any `TimeoutError` 504
 * `{"error":"deadline_exceeded","scope":…}` (the scope that expired) when
 * nothing was sent yet, and passes every other error on. Register it after
 * your routes, with {@link deadline} first.
 *
 * @returns The error middleware.
 * @category HTTP
 * @example
 * ```ts
 * import express from 'express';
 * import { withTimeout } from 'loopsafe';
 * import { deadline, deadlineErrors } from 'loopsafe/express';
 *
 * const app = express();
 * app.use(deadline());
 * app.get('/report', async (_req, res) => {
 *   // A nested scope's TimeoutError escapes the handler…
 *   res.json(await withTimeout(20, () => new Promise(() => {}), { name: 'build-report' }));
 * });
 * app.use(deadlineErrors()); // …and is answered 504, not 500.
 *
 * const server = app.listen(0, '127.0.0.1');
 * await new Promise((resolve) => server.once('listening', resolve));
 * const { port } = server.address() as { port: number };
 * const reply = await fetch(`http://127.0.0.1:${port}/report`);
 * console.log(reply.status, await reply.json()); // 504 { error: 'deadline_exceeded', scope: 'build-report' }
 * server.close();
 * ```
 */
export function deadlineErrors(): DeadlineErrorMiddleware {
  return (error, req, res, next) => {
    if (!isTimeoutError(error)) {
      next(error);
      return;
    }
    sendAnswer(res, deadlineAnswer(error, req.scope?.name ?? 'request'));
  };
}
