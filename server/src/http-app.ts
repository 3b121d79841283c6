/**
 * The HTTP request lifecycle: limits, health, shedding, routing, the request
 * scope and the mapping of errors to statuses. The request scope is
 * loopsafe/http's `withRequestScope`: its deadline comes from
 * `x-request-timeout` (clamped, else the default), it is cancelled when the
 * client disconnects or the drain of `gracefulShutdown` ends, and it answers
 * 400 for a bad header, 504 for an escaped TimeoutError and 503 for a
 * request the shutdown cancels.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isTimeoutError } from 'loopsafe';
import { withRequestScope } from 'loopsafe/http';
import { fanout, FANOUT_PARAMS, naiveFanout } from './api-fanout.js';
import { resilient, RESILIENT_PARAMS } from './api-resilient.js';
import type { AppContext, InFlightRequest } from './context.js';
import { health } from './health.js';
import { BadRequest, Query } from './validate.js';

export interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** What a handler can do beyond returning its reply. */
export interface RouteTools {
  /**
   * Registers the answer to write when the request's own deadline passes while the handler still
   * runs: the partial result, written synchronously as the request scope's signal aborts — before
   * `withRequestScope` could answer 504 — so there is one deadline, the request's, and no race.
   */
  onDeadline(build: () => Reply): void;
}

interface Route {
  params: readonly string[];
  /** Runs inside the request scope (`withRequestScope`) unless `unscoped`. */
  handler: (ctx: AppContext, query: Query, tools: RouteTools) => Reply | Promise<Reply>;
  unscoped?: boolean;
}

const noTools: RouteTools = {
  onDeadline() {
    /* unscoped: no deadline */
  },
};

function routes(ctx: AppContext): Map<string, Route> {
  const table = new Map<string, Route>([
    [
      '/api/fanout',
      ctx.config.mode === 'naive'
        ? { params: FANOUT_PARAMS, handler: naiveFanout, unscoped: true }
        : { params: FANOUT_PARAMS, handler: fanout },
    ],
    ['/api/resilient', { params: RESILIENT_PARAMS, handler: resilient }],
  ]);
  if (ctx.config.debugEndpoints) table.set('/debug/block', { params: ['ms'], handler: blockLoop, unscoped: true });
  return table;
}

/** `GET /debug/block?ms=200`: holds the event loop, to watch shedding start. */
function blockLoop(_ctx: AppContext, query: Query): Reply {
  const ms = query.int('ms', 0, 5_000, 200);
  const until = performance.now() + ms;
  while (performance.now() < until) {
    /* busy: no timer can fire */
  }
  return { status: 200, body: { blockedMs: ms } };
}

export function send(res: ServerResponse, reply: Reply, close = false): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    ...reply.headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(text);
}

export const error = (status: number, code: string, message: string, headers?: Record<string, string>): Reply => ({
  status,
  body: { error: code, message },
  ...(headers === undefined ? {} : { headers }),
});

/**
 * Creates the request listener for `http.createServer`.
 *
 * @param ctx - The server's shared state.
 * @returns The listener.
 */
export function createRequestHandler(ctx: AppContext): (req: IncomingMessage, res: ServerResponse) => void {
  const table = routes(ctx);
  return (req, res) => {
    try {
      handle(ctx, table, req, res);
    } catch (e) {
      // A bug of ours must not take the process down: log it, answer 500.
      ctx.logger.error('request_failed', { path: req.url, error: e });
      send(res, error(500, 'internal_error', 'internal error'));
    }
  };
}

function handle(ctx: AppContext, table: Map<string, Route>, req: IncomingMessage, res: ServerResponse): void {
  const started = performance.now();
  const rawUrl = req.url ?? '/';
  let route = rawUrl.split('?', 1)[0] ?? '/';
  res.on('finish', () => {
    ctx.logger.info('request', {
      method: req.method,
      path: route,
      status: res.statusCode,
      ms: Math.round(performance.now() - started),
    });
  });
  if (!limitBody(ctx, req, res)) return;
  if (Buffer.byteLength(rawUrl) > ctx.config.maxUrlBytes) {
    route = '(too long)';
    send(res, error(414, 'uri_too_long', `the URL must be at most ${ctx.config.maxUrlBytes} bytes`));
    return;
  }
  const url = URL.canParse(rawUrl, 'http://server') ? new URL(rawUrl, 'http://server') : undefined;
  if (url === undefined) {
    send(res, error(400, 'bad_request', 'the request URL cannot be parsed'));
    return;
  }
  route = url.pathname;
  if (route === '/health' || route === '/ws/health') {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, error(405, 'method_not_allowed', 'use GET', { allow: 'GET, HEAD' }));
      return;
    }
    send(res, health(ctx));
    return;
  }
  if (ctx.draining) {
    send(res, error(503, 'shutting_down', 'the server is shutting down', { 'retry-after': '1' }), true);
    return;
  }
  const shed = ctx.shedder.check();
  if (shed.shed) {
    send(
      res,
      error(503, 'overloaded', 'the server is overloaded (event-loop lag); retry later', {
        'retry-after': String(shed.retryAfterSeconds),
      }),
    );
    return;
  }
  const target = table.get(route);
  if (target === undefined) {
    send(res, error(404, 'not_found', `no route ${route}`));
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(res, error(405, 'method_not_allowed', 'use GET or HEAD', { allow: 'GET, HEAD' }));
    return;
  }
  let query: Query;
  try {
    query = new Query(url.searchParams, target.params);
  } catch (e) {
    send(res, error(400, 'bad_request', e instanceof Error ? e.message : String(e)));
    return;
  }
  if (target.unscoped === true) {
    Promise.resolve()
      .then(() => target.handler(ctx, query, noTools))
      .then(
        (reply) => {
          send(res, reply);
        },
        (e: unknown) => {
          answerError(ctx, res, route, e);
        },
      );
    return;
  }
  const entry: InFlightRequest = { route };
  withRequestScope(
    req,
    res,
    async (scope) => {
      ctx.inFlight.add(entry);
      let partial: (() => Reply) | undefined;
      // Runs inside the deadline timer's callback, as the scope aborts: withRequestScope's 504 comes
      // after it (a promise reaction), finds the response ended, and writes nothing.
      const onAbort = (): void => {
        if (partial !== undefined && isTimeoutError(scope.signal.reason)) send(res, partial());
      };
      scope.signal.addEventListener('abort', onAbort, { once: true });
      try {
        send(
          res,
          await target.handler(ctx, query, {
            onDeadline(build) {
              partial = build;
            },
          }),
        );
      } finally {
        scope.signal.removeEventListener('abort', onAbort);
        ctx.inFlight.delete(entry);
      }
    },
    {
      // x-request-timeout, grpc-timeout and x-envoy-expected-rq-timeout-ms: the smallest wins.
      defaultTimeoutMs: ctx.config.requestTimeoutMs,
      maxTimeoutMs: ctx.config.maxRequestTimeoutMs,
      name: `GET ${route}`,
    },
  ).catch((e: unknown) => {
    answerError(ctx, res, route, e);
  });
}

function answerError(ctx: AppContext, res: ServerResponse, route: string, e: unknown): void {
  if (e instanceof BadRequest) {
    send(res, error(400, 'bad_request', e.message));
    return;
  }
  // The details go to the log; the client gets a stable code, never the upstream's text or address.
  ctx.logger.error('request_failed', { path: route, error: e });
  send(res, error(502, 'upstream_failed', 'an upstream call failed'));
}

/**
 * Bounds the request body: a declared `content-length` over `maxBodyBytes` is a 413 at once, and a
 * body that streams past it is cut off (413 if nothing was sent yet). Either way the connection is
 * closed, after the answer had a moment to leave, rather than read to its end.
 *
 * @returns `false` when the request was answered here.
 */
function limitBody(ctx: AppContext, req: IncomingMessage, res: ServerResponse): boolean {
  const max = ctx.config.maxBodyBytes;
  const tooLarge = (): void => {
    req.pause();
    if (!res.headersSent) {
      send(res, error(413, 'payload_too_large', `the request body must be at most ${max} bytes`), true);
    }
    const socket = req.socket;
    const cut = (): void => {
      // The client may still be sending: stop reading, give the answer a moment to leave, then close.
      setTimeout(() => socket.destroy(), 1_000).unref();
    };
    if (res.writableFinished) cut();
    else res.once('finish', cut);
  };
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > max) {
    tooLarge();
    return false;
  }
  let received = 0;
  const onData = (chunk: Buffer): void => {
    received += chunk.length;
    if (received > max) {
      req.off('data', onData);
      tooLarge();
    }
  };
  req.on('data', onData);
  return true;
}
