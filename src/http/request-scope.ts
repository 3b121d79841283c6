/**
 * `withRequestScope`: a `node:http` request's deadline scope.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { withTimeout, type Scope } from '../index.js';
import { assertFunction, describe } from '../internal/validate.js';
import {
  admit,
  answerFor,
  ClientClosedError,
  readRequestScopeOptions,
  RequestLife,
  requestScopeName,
  type RequestScopeOptions,
  scopeOptions,
  sendAnswer,
  watchClient,
} from './request-life.js';

function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}

/**
 * Runs `handler(scope)` inside a request's deadline scope, on `node:http`
 * (`http.createServer`, `https.createServer`).
 *
 * The scope opens at once, before the body is read, with the budget of the
 * request's deadline headers (see `requestDeadline`) clamped to
 * `maxTimeoutMs`, else `defaultTimeoutMs`. It is the ambient scope inside
 * `handler`, so every loopsafe call there — `safeSleep`, `retry`,
 * `scopedFetch` — stops at the request's deadline. It is cancelled with a
 * {@link ClientClosedError} when the client goes away before the response
 * finished, and with a {@link ShutdownError} when `gracefulShutdown`'s drain
 * ends first.
 *
 * What it answers itself, as JSON, when nothing was sent yet:
 * - 400 `{"error":"bad_deadline_header","header":…,"message":…}` for a malformed
 *   deadline header (`handler` is not called);
 * - 504 `{"error":"deadline_exceeded","scope":…}` for any `TimeoutError` that
 *   escapes `handler` — the request's own deadline passing (at that moment,
 *   without waiting for `handler`), or a nested scope's;
 * - 503 `{"error":"shutting_down"}` with `connection: close` for a request that
 *   arrives during a drain (on a kept-alive connection), or that the drain cancels.
 *
 * If the response had started when its deadline passed, it is destroyed
 * rather than ended: a cut-off body must not pass for a whole one. Any other
 * error `handler` throws is the returned promise's rejection, for your own
 * error handling.
 *
 * @param req - The request.
 * @param res - Its response.
 * @param handler - The work: receives the request's scope; may be sync or async.
 * @param options - `defaultTimeoutMs`, `maxTimeoutMs`, `headers`, `name`, `signal`, `clock`.
 * @returns `handler`'s result, or `undefined` when the request was answered (400, 503, 504) or its client went away.
 * @throws `TypeError`/`RangeError` synchronously for bad arguments; the returned promise rejects with any error `handler` throws that is not listed above.
 * @category HTTP
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { safeSleep } from 'loopsafe';
 * import { withRequestScope } from 'loopsafe/http';
 *
 * const server = createServer((req, res) => {
 *   withRequestScope(
 *     req,
 *     res,
 *     async (scope) => {
 *       await safeSleep(req.url === '/slow' ? 60_000 : 0); // stops at the request's deadline
 *       res.end(`${scope.name}, deadline in ${scope.remaining() > 1_000 ? 'seconds' : 'milliseconds'}`);
 *     },
 *     { defaultTimeoutMs: 5_000, maxTimeoutMs: 30_000 },
 *   ).catch((error: unknown) => {
 *     res.statusCode = 500; // your own errors: withRequestScope answers 400, 503 and 504 itself
 *     res.end(String(error));
 *   });
 * });
 * await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
 * const { port } = server.address() as { port: number };
 *
 * const hello = await fetch(`http://127.0.0.1:${port}/hello`, { headers: { 'x-request-timeout': '2000' } });
 * console.log(await hello.text()); // 'GET /hello, deadline in seconds'
 * const slow = await fetch(`http://127.0.0.1:${port}/slow`, { headers: { 'grpc-timeout': '50m' } });
 * console.log(slow.status, await slow.json()); // 504 { error: 'deadline_exceeded', scope: 'GET /slow' }
 * const bad = await fetch(`http://127.0.0.1:${port}/hello`, { headers: { 'x-request-timeout': 'soon' } });
 * console.log(bad.status); // 400
 * server.close();
 * ```
 */
export function withRequestScope<T>(
  req: IncomingMessage,
  res: ServerResponse,
  handler: (scope: Scope) => T | PromiseLike<T>,
  options?: RequestScopeOptions,
): Promise<Awaited<T> | undefined> {
  const given: unknown[] = [req, res];
  if (!isObject(given[0]) || typeof (req as Partial<IncomingMessage>).headers !== 'object') {
    throw new TypeError(`Expected \`req\` to be an http.IncomingMessage, got ${describe(req)}`);
  }
  if (!isObject(given[1]) || typeof (res as Partial<ServerResponse>).writeHead !== 'function') {
    throw new TypeError(`Expected \`res\` to be an http.ServerResponse, got ${describe(res)}`);
  }
  assertFunction('handler', handler);
  const config = readRequestScopeOptions('withRequestScope', options);
  const budget = admit(config, res, req.headers, true);
  if (typeof budget !== 'number') {
    sendAnswer(res, budget);
    return Promise.resolve(undefined);
  }
  const name = requestScopeName(config, req.method, req.url);
  const life = new RequestLife(res);
  watchClient(res, () => {
    life.cancel(new ClientClosedError());
  });
  return withTimeout(
    budget,
    (scope) => {
      life.bind(scope);
      return handler(scope);
    },
    scopeOptions(config, name),
  ).then(
    (value) => {
      life.end();
      return value;
    },
    (error: unknown) => {
      life.end();
      const answer = answerFor(error, name);
      if (answer === undefined) throw error;
      if (answer !== null) sendAnswer(res, answer);
      return undefined;
    },
  );
}
