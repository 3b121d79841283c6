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

interface Route {
  params: readonly string[];
  /** Runs inside the request scope (`withTimeout`) unless `unscoped`. */
  handler: (ctx: AppContext, query: Query) => Reply | Promise<Reply>;
  unscoped?: boolean;
}

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
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(text);
}

const error = (status: number, code: string, message: string, headers?: Record<string, string>): Reply => ({
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
  if (req.method !== 'GET') {
    send(res, error(405, 'method_not_allowed', 'use GET', { allow: 'GET' }));
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
      .then(() => target.handler(ctx, query))
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
    async () => {
      ctx.inFlight.add(entry);
      try {
        send(res, await target.handler(ctx, query));
      } finally {
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
  ctx.logger.error('request_failed', { path: route, error: e });
  send(res, error(502, 'upstream_failed', e instanceof Error ? e.message : String(e)));
}
