/**
 * The HTTP request lifecycle: limits, health, shedding, routing, the request
 * scope (deadline from `x-request-timeout`, cancelled when the client
 * disconnects or the server shuts down) and the mapping of errors to statuses.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isTimeoutError, TimeoutError, withTimeout } from 'loopsafe';
import { fanout, FANOUT_PARAMS, naiveFanout } from './api-fanout.js';
import { resilient, RESILIENT_PARAMS } from './api-resilient.js';
import { ClientGone, ShuttingDown, type AppContext, type InFlightRequest } from './context.js';
import { health } from './health.js';
import { BadRequest, parseRequestTimeout, Query } from './validate.js';

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
  let budgetMs: number;
  let query: Query;
  try {
    budgetMs = parseRequestTimeout(
      req.headers['x-request-timeout'],
      ctx.config.requestTimeoutMs,
      ctx.config.maxRequestTimeoutMs,
    );
    query = new Query(url.searchParams, target.params);
  } catch (e) {
    send(res, error(400, 'bad_request', e instanceof Error ? e.message : String(e)));
    return;
  }
  const entry: InFlightRequest = { route, controller: new AbortController() };
  ctx.inFlight.add(entry);
  // The client went away before we answered: cancel the request scope and all its upstream work.
  res.on('close', () => {
    ctx.inFlight.delete(entry);
    if (!res.writableFinished) entry.controller.abort(new ClientGone());
  });
  const work =
    target.unscoped === true
      ? Promise.resolve().then(() => target.handler(ctx, query))
      : withTimeout(budgetMs, () => target.handler(ctx, query), {
          name: `GET ${route}`,
          signal: entry.controller.signal,
        });
  work.then(
    (reply) => {
      send(res, reply);
    },
    (e: unknown) => {
      answerError(ctx, res, route, e);
    },
  );
}

function answerError(ctx: AppContext, res: ServerResponse, route: string, e: unknown): void {
  if (e instanceof ClientGone) {
    ctx.logger.info('request_cancelled', { path: route, reason: 'client disconnected' });
    return;
  }
  if (e instanceof ShuttingDown) {
    send(
      res,
      error(503, 'shutting_down', 'the server shut down before the request finished', { 'retry-after': '1' }),
      true,
    );
    return;
  }
  if (e instanceof BadRequest) {
    send(res, error(400, 'bad_request', e.message));
    return;
  }
  if (isTimeoutError(e)) {
    const scope = e instanceof TimeoutError ? e.scopeName : undefined;
    ctx.logger.warn('deadline_exceeded', { path: route, scope, message: e instanceof Error ? e.message : String(e) });
    send(
      res,
      error(504, 'deadline_exceeded', `the request deadline passed${scope === undefined ? '' : ` (scope ${scope})`}`),
    );
    return;
  }
  ctx.logger.error('request_failed', { path: route, error: e });
  send(res, error(502, 'upstream_failed', e instanceof Error ? e.message : String(e)));
}
