/**
 * The Fastify plugin: every request runs in its deadline scope. Import from
 * `loopsafe/fastify`; `fastify` (5) is an optional peer dependency.
 *
 * @module fastify
 */
import { AsyncResource } from 'node:async_hooks';
import type { FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { isTimeoutError, type Scope } from './index.js';
import {
  admit,
  deadlineAnswer,
  hasBody,
  readRequestScopeOptions,
  type RequestScopeConfig,
  requestScopeName,
  type RequestScopeOptions,
  runForResponse,
  type ScopeAnswer,
} from './http/request-life.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's deadline scope (set by `loopsafe/fastify`). */
    scope: Scope | undefined;
  }
}

/** Runs a callback in the async context the request scope was opened in (after the body was read elsewhere). */
const kEnter = Symbol('loopsafe.enterRequestScope');
type WithEnter = FastifyRequest & { [kEnter]?: (fn: () => void) => void };

/** Options Fastify itself passes to every plugin; not ours to validate. */
const REGISTER_OPTIONS = new Set(['prefix', 'logLevel', 'logSerializers']);

function send(reply: FastifyReply, answer: ScopeAnswer): void {
  if (reply.sent || reply.raw.writableEnded) return;
  if (reply.raw.headersSent) {
    reply.raw.destroy();
    return;
  }
  void reply.code(answer.status).headers(answer.headers).header('cache-control', 'no-store').send(answer.body);
}

/** A route handler whose escaped `TimeoutError` is answered 504; sync and async handlers keep their shape. */
function answering504(handler: RouteOptions['handler']): RouteOptions['handler'] {
  return function (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) {
    const fail = (error: unknown): unknown => {
      if (!isTimeoutError(error)) throw error;
      send(reply, deadlineAnswer(error, request.scope?.name ?? 'request'));
      return reply;
    };
    let result: unknown;
    try {
      result = handler.call(this, request, reply);
    } catch (error) {
      return fail(error);
    }
    return result instanceof Promise ? result.catch(fail) : result;
  };
}

/** Runs the rest of the lifecycle in the request scope's async context, if the body took it away. */
function reenterScope(request: FastifyRequest, _reply: FastifyReply, next: () => void): void {
  const enter = (request as WithEnter)[kEnter];
  if (enter === undefined) next();
  else enter(next);
}

const plugin: FastifyPluginCallback<RequestScopeOptions> = (app, options, done) => {
  const own: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) if (!REGISTER_OPTIONS.has(key)) own[key] = value;
  let config: RequestScopeConfig;
  try {
    config = readRequestScopeOptions('loopsafe/fastify', own);
  } catch (error) {
    done(error as Error);
    return;
  }
  app.decorateRequest('scope', undefined);

  app.addHook('onRequest', (request, reply, next) => {
    const res = reply.raw;
    const budget = admit(config, res, request.headers, true);
    if (typeof budget !== 'number') {
      send(reply, budget);
      return;
    }
    const name = config.name ?? requestScopeName(config, request.method, request.routeOptions.url ?? request.url);
    const withBody = hasBody(request.headers);
    runForResponse(
      res,
      config,
      budget,
      name,
      (scope) => {
        request.scope = scope;
        // The body is read in the socket's async context: the handler is put back into this one.
        if (withBody)
          (request as WithEnter)[kEnter] = AsyncResource.bind((fn: () => void) => {
            fn();
          });
        next();
      },
      (error, answer) => {
        // The outside signal's own reason: Fastify's error handler answers it.
        if (answer === undefined) {
          if (!reply.sent) void reply.send(error);
        } else if (answer !== null) send(reply, answer);
      },
    );
  });

  app.addHook('onRoute', (route) => {
    route.handler = answering504(route.handler);
    // A route that may take a body has it read in the socket's async context: put the hooks
    // after it, and the handler, back into the request scope's. GET and HEAD routes pay nothing.
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (methods.some((method) => method !== 'GET' && method !== 'HEAD')) {
      const own = route.preValidation;
      route.preValidation = [reenterScope, ...(own === undefined ? [] : Array.isArray(own) ? own : [own])];
    }
  });
  done();
};

// Like fastify-plugin: the hooks apply to the app that registers the plugin, not to a child context.
Object.assign(plugin, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'loopsafe',
  [Symbol.for('plugin-meta')]: { name: 'loopsafe', fastify: '5.x' },
});

/**
 * The Fastify plugin (the default export, also named `loopsafeFastify`): every request runs inside its
 * deadline scope, the ambient scope of its hooks and handler
 * (`request.scope`), opened when the request arrives — before its body is
 * read — with the budget of its deadline headers (`x-request-timeout`,
 * `grpc-timeout`, `x-envoy-expected-rq-timeout-ms`) clamped to
 * `maxTimeoutMs`, else `defaultTimeoutMs`. It applies to the app that
 * registers it, as `fastify-plugin` does: register it before the routes.
 *
 * - A malformed deadline header is answered 400 `{"error":"bad_deadline_header",…}`.
 * - A `TimeoutError` escaping a handler, or the request's own deadline
 *   passing while the handler still runs, is answered 504
 *   `{"error":"deadline_exceeded","scope":…}` with the scope's name.
 * - The scope is cancelled with a `ClientClosedError` when the client goes
 *   away before the response finished: its upstream calls stop.
 * - `gracefulShutdown(app.server, …)` from `loopsafe/http` drains these
 *   scopes, answering 503 to the ones it cancels.
 *
 * @param app - The Fastify instance (Fastify calls this through `app.register`).
 * @param options - {@link RequestScopeOptions}: `defaultTimeoutMs`, `maxTimeoutMs`, `headers`, `name`, `signal`, `clock`.
 * @param done - Fastify's callback.
 * @throws `TypeError`/`RangeError` from `app.register` (when the app is ready) for bad options.
 * @category HTTP
 * @example
 * ```ts
 * import Fastify from 'fastify';
 * import { safeSleep } from 'loopsafe';
 * import loopsafe from 'loopsafe/fastify';
 *
 * const app = Fastify();
 * await app.register(loopsafe, { defaultTimeoutMs: 5_000, maxTimeoutMs: 30_000 });
 * app.get('/slow', async () => {
 *   await safeSleep(10_000); // stops at the request's deadline
 *   return { done: true };
 * });
 * const reply = await app.inject({ url: '/slow', headers: { 'x-request-timeout': '50' } });
 * console.log(reply.statusCode, reply.json()); // 504 { error: 'deadline_exceeded', scope: 'GET /slow' }
 * await app.close();
 * ```
 */
export const loopsafeFastify: FastifyPluginCallback<RequestScopeOptions> = plugin;
export default loopsafeFastify;
