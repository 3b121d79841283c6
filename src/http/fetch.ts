/**
 * `scopedFetch`: the WHATWG `fetch`, bounded by the ambient deadline, sending
 * the remaining budget downstream.
 *
 * @module
 */
import { currentScope, timeoutContext, type Scope } from '../index.js';
import { formatBudget } from './headers.js';

const BUDGET_HEADER = 'x-request-timeout';

/**
 * `fetch(input, init)`, bounded by the ambient scope and by `init.signal`,
 * that tells the service it calls how long it has.
 *
 * - The request carries the ambient scope's remaining budget in
 *   `x-request-timeout` (whole milliseconds, rounded down), unless the caller
 *   set that header. Outside a scope, or in one without a deadline, nothing
 *   is added.
 * - At the deadline the request is aborted, so the socket is released, and
 *   the promise rejects with the scope's `TimeoutError`; a cancelled scope
 *   rejects with its reason, and `init.signal` with its own (`===`).
 * - The response body is bounded the same way while it is read: read it
 *   inside the scope (`await (await scopedFetch(url)).json()`). With both an
 *   ambient scope and `init.signal`, both bound the body too, until it is read
 *   to its end or cancelled: read or cancel every body (undici holds the
 *   connection until then anyway).
 *
 * @param input - What `fetch` takes: a URL string, a `URL` or a `Request`.
 * @param init - What `fetch` takes; `init.signal` (else a `Request`'s own signal) is followed as well as the ambient scope.
 * @returns The response.
 * @throws The returned promise rejects with the ambient scope's `TimeoutError` at its deadline, with the scope's or `init.signal`'s reason when cancelled, and with what `fetch` rejects with otherwise.
 * @category HTTP
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { withTimeout } from 'loopsafe';
 * import { scopedFetch } from 'loopsafe/http';
 * import { createManualClock } from 'loopsafe/testing';
 *
 * // A downstream service that reports the budget it was given.
 * const downstream = createServer((req, res) => {
 *   res.end(`budget ${String(req.headers['x-request-timeout'])}`);
 * });
 * await new Promise<void>((resolve) => downstream.listen(0, '127.0.0.1', resolve));
 * const { port } = downstream.address() as { port: number };
 *
 * const clock = createManualClock(); // its time stands still: the budget sent is exact
 * const text = await withTimeout(
 *   800,
 *   async () => {
 *     const response = await scopedFetch(`http://127.0.0.1:${port}/`);
 *     return response.text(); // the body is read inside the scope: bounded too
 *   },
 *   { clock },
 * );
 * console.log(text); // 'budget 800'
 * downstream.close();
 * ```
 */
export function scopedFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
  const scope = currentScope();
  if (scope === undefined) return fetch(input, init);
  try {
    // A CPU-bound stretch may have passed the deadline with no timer able to fire: read the clock.
    scope.check();
  } catch (reason) {
    return Promise.reject(reason);
  }
  const remaining = scope.remaining();
  const sent: RequestInit = { ...init, signal: scope.signal };
  if (remaining !== Number.POSITIVE_INFINITY) sent.headers = withBudget(input, init?.headers, remaining);
  // `init.signal` replaces a Request's own signal in `fetch`: follow the Request's too, as fetch alone would.
  const own = init?.signal ?? (input instanceof Request ? input.signal : undefined);
  return own === undefined ? fetch(input, sent) : fetchFollowingBoth(input, sent, own);
}

/** The request's headers with the budget added, unless the caller set it. */
function withBudget(
  input: string | URL | Request,
  given: RequestInit['headers'],
  remaining: number,
): NonNullable<RequestInit['headers']> {
  const budget = formatBudget(BUDGET_HEADER, remaining);
  // The usual case, no headers or a plain record: a record again (no Headers object to build).
  if (given === undefined && !(input instanceof Request)) return { [BUDGET_HEADER]: budget };
  if (given !== undefined && !(given instanceof Headers) && !Array.isArray(given)) {
    for (const name in given) if (name.toLowerCase() === BUDGET_HEADER) return given;
    return { ...given, [BUDGET_HEADER]: budget };
  }
  const headers = new Headers(given ?? (input as Request).headers);
  if (!headers.has(BUDGET_HEADER)) headers.set(BUDGET_HEADER, budget);
  return headers;
}

/**
 * The request and its body follow the ambient scope and `own`, through a
 * child scope of the ambient one that is closed when the body is done.
 */
async function fetchFollowingBoth(
  input: string | URL | Request,
  init: RequestInit,
  own: AbortSignal,
): Promise<Response> {
  const context: Scope = timeoutContext(Number.POSITIVE_INFINITY, { signal: own, name: 'scopedFetch' });
  const close = (): void => {
    context[Symbol.dispose]();
  };
  let response: Response;
  try {
    response = await fetch(input, { ...init, signal: context.signal });
  } catch (error) {
    close();
    throw error;
  }
  return trackBody(response, close);
}

/** The same response, whose body calls `done` once it is read to its end, fails or is cancelled. */
function trackBody(response: Response, done: () => void): Response {
  const body = response.body;
  if (body === null) {
    done();
    return response;
  }
  const reader = body.getReader();
  const tracked = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const chunk = (await reader.read()) as { done: boolean; value?: Uint8Array };
          if (chunk.done) {
            done();
            controller.close();
          } else if (chunk.value !== undefined) {
            controller.enqueue(chunk.value);
          }
        } catch (error) {
          done();
          controller.error(error);
        }
      },
      cancel(reason) {
        done();
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
  const copy = new Response(tracked, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
  // What the constructor cannot set: where the response came from.
  Object.defineProperties(copy, {
    url: { value: response.url },
    redirected: { value: response.redirected },
    type: { value: response.type },
  });
  return copy;
}
