/**
 * What every request scope shares, whichever framework serves it: the options,
 * the budget read from the headers, the reasons a request is cancelled from
 * outside, the registry of in-flight requests per server that
 * `gracefulShutdown` drains, and the JSON answers (400, 503, 504).
 *
 * @module
 */
import type { IncomingHttpHeaders, Server, ServerResponse } from 'node:http';
import { isTimeoutError, TimeoutError, withTimeout, type Clock, type Scope } from '../index.js';
import { assertClock, assertDuration, assertOptionalString, assertSignal, describe } from '../internal/validate.js';
import {
  deadlineFrom,
  DeadlineHeaderError,
  readDeadlineOptions,
  type DeadlineHeader,
  type HeaderSource,
} from './headers.js';

/**
 * Options of a request scope, the same for {@link withRequestScope} and every
 * framework adapter (`loopsafe/fastify`, `loopsafe/express`, `loopsafe/hono`).
 *
 * @category HTTP
 */
export interface RequestScopeOptions {
  /**
   * The budget of a request that carries no deadline header, in milliseconds.
   * @defaultValue `Infinity` (no deadline of its own; an enclosing scope's still applies)
   */
  defaultTimeoutMs?: number | undefined;
  /**
   * The largest budget a caller may ask for: a larger header value is clamped to it.
   * @defaultValue `Infinity`
   */
  maxTimeoutMs?: number | undefined;
  /**
   * The deadline headers to read; the smallest budget among those present wins.
   * @defaultValue `['x-request-timeout', 'grpc-timeout', 'x-envoy-expected-rq-timeout-ms']`
   */
  headers?: readonly DeadlineHeader[] | undefined;
  /**
   * The scope's name, shown in its `TimeoutError`, in the 504 body and in `pendingScopes()`.
   * @defaultValue the method and the path, without the query: `'GET /users/7'`
   */
  name?: string | undefined;
  /** An outside signal that cancels every request scope (a server-wide shutdown signal); its reason passes through. */
  signal?: AbortSignal | undefined;
  /**
   * The clock the deadline is measured on.
   * @defaultValue the system clock
   */
  clock?: Clock | undefined;
}

const REQUEST_SCOPE_OPTIONS = /* @__PURE__ */ new Set([
  'defaultTimeoutMs',
  'maxTimeoutMs',
  'headers',
  'name',
  'signal',
  'clock',
]);

/** Request scope options, validated once. */
export interface RequestScopeConfig {
  readonly headers: readonly DeadlineHeader[];
  readonly maxMs: number;
  readonly defaultMs: number;
  readonly name: string | undefined;
  readonly signal: AbortSignal | undefined;
  readonly clock: Clock | undefined;
}

/** The options a request scope's `withTimeout` takes: only those given, made once. */
export function scopeOptions(
  config: RequestScopeConfig,
  name: string,
): { name: string; signal?: AbortSignal; clock?: Clock } {
  if (config.signal === undefined && config.clock === undefined) return { name };
  return {
    name,
    ...(config.signal === undefined ? {} : { signal: config.signal }),
    ...(config.clock === undefined ? {} : { clock: config.clock }),
  };
}

/** Validates request scope options (throws at the call site, naming the option). */
export function readRequestScopeOptions(fn: string, options: RequestScopeOptions | undefined): RequestScopeConfig {
  const given: unknown = options;
  if (given !== undefined && (typeof given !== 'object' || given === null || Array.isArray(given))) {
    throw new TypeError(`Expected \`options\` of ${fn} to be an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options ?? {})) {
    if (!REQUEST_SCOPE_OPTIONS.has(key)) {
      throw new TypeError(
        `Unknown option \`${key}\` passed to ${fn}; known options: ${[...REQUEST_SCOPE_OPTIONS].join(', ')}`,
      );
    }
  }
  const defaultMs = options?.defaultTimeoutMs ?? Number.POSITIVE_INFINITY;
  assertDuration('defaultTimeoutMs', defaultMs);
  const maxTimeoutMs = options?.maxTimeoutMs ?? Number.POSITIVE_INFINITY;
  assertDuration('maxTimeoutMs', maxTimeoutMs);
  const { headers, maxMs } = readDeadlineOptions(fn, { headers: options?.headers, maxMs: maxTimeoutMs });
  assertOptionalString('name', options?.name);
  assertSignal('signal', options?.signal);
  assertClock('clock', options?.clock);
  return {
    headers,
    maxMs,
    defaultMs: Math.min(defaultMs, maxMs),
    name: options?.name,
    signal: options?.signal,
    clock: options?.clock,
  };
}

/**
 * Whether a request may open its scope, the same check in every adapter: its
 * budget (the deadline headers', clamped, else the default), or the answer it
 * gets instead — 503 while its server drains, 400 for a malformed deadline
 * header. `nodeHeaders`: `headers` is Node's `req.headers` (names in lower case).
 */
export function admit(
  config: RequestScopeConfig,
  res: ServerResponse | undefined,
  headers: HeaderSource,
  nodeHeaders: boolean,
): number | ScopeAnswer {
  if (RequestLife.refused(res)) return SHUTDOWN_ANSWER;
  try {
    return deadlineFrom(headers, config.headers, config.maxMs, nodeHeaders) ?? config.defaultMs;
  } catch (error) {
    if (!(error instanceof DeadlineHeaderError)) throw error;
    return badHeaderAnswer(error);
  }
}

/** Whether a Node request carries a body (whose reading leaves the request scope's async context). */
export function hasBody(headers: IncomingHttpHeaders): boolean {
  return headers['content-length'] !== undefined || headers['transfer-encoding'] !== undefined;
}

/** The default scope name: method and path, never the query (it may hold secrets, and it has no bound). */
export function requestScopeName(
  config: RequestScopeConfig,
  method: string | undefined,
  url: string | undefined,
): string {
  if (config.name !== undefined) return config.name;
  const path = url === undefined ? '/' : url.split('?', 1)[0] || '/';
  return `${method ?? 'GET'} ${path}`;
}

/**
 * The client went away before the response finished: the reason a request
 * scope is cancelled with. Nothing is answered (there is nobody to answer).
 *
 * @category HTTP
 * @example
 * ```ts
 * import { ClientClosedError } from 'loopsafe/http';
 *
 * const error = new ClientClosedError();
 * console.log(error.name, error.status); // 'ClientClosedError' 499
 * ```
 */
export class ClientClosedError extends Error {
  /** Always `'ClientClosedError'`. */
  override readonly name = 'ClientClosedError' as const;
  /** The status logs record for it, as nginx does: 499 (Client Closed Request). Never sent. */
  readonly status = 499 as const;
  constructor() {
    super('The client closed the connection before the response finished');
  }
}

/**
 * `gracefulShutdown`'s drain ended before the request finished: the reason
 * its scope is cancelled with. The request is answered 503 when nothing was
 * sent yet.
 *
 * @category HTTP
 * @example
 * ```ts
 * import { ShutdownError } from 'loopsafe/http';
 *
 * const error = new ShutdownError();
 * console.log(error.name, error.status); // 'ShutdownError' 503
 * ```
 */
export class ShutdownError extends Error {
  /** Always `'ShutdownError'`. */
  override readonly name = 'ShutdownError' as const;
  /** The status the request is answered with: 503. */
  readonly status = 503 as const;
  constructor() {
    super('The server shut down before the request finished');
  }
}

/** One server's in-flight request scopes, and whether it is draining. */
export interface ServerRequests {
  readonly lives: Set<RequestLife>;
  draining: boolean;
  /** Requests that ended since the drain began. */
  endedDuringDrain: number;
  /** Called when the last life ends during a drain. */
  onEmpty: (() => void) | undefined;
}

const servers = /* @__PURE__ */ new WeakMap<object, ServerRequests>();

/** The registry entry of `server`, made on first use. */
export function requestsOf(server: object): ServerRequests {
  let entry = servers.get(server);
  if (entry === undefined) {
    entry = { lives: new Set(), draining: false, endedDuringDrain: 0, onEmpty: undefined };
    servers.set(server, entry);
  }
  return entry;
}

/** The server a request came in on: `net.Server` sets `socket.server` on every connection it accepts. */
export function serverOf(res: ServerResponse | undefined): Server | undefined {
  const socket = res?.socket as { server?: unknown } | null | undefined;
  const server = socket?.server;
  return typeof server === 'object' && server !== null ? (server as Server) : undefined;
}

/**
 * One request scope's life: registered with its server while it runs (so a
 * drain can find it and cancel it), cancelled when the client goes away.
 */
export class RequestLife {
  #scope: Scope | undefined = undefined;
  #pending: unknown = undefined;
  readonly #registry: ServerRequests | undefined;
  readonly #res: ServerResponse | undefined;
  #ended = false;

  constructor(res: ServerResponse | undefined) {
    this.#res = res;
    const server = serverOf(res);
    this.#registry = server === undefined ? undefined : requestsOf(server);
    this.#registry?.lives.add(this);
    // A drain that started before this response was written: close the connection after it.
    if (this.#registry?.draining === true) this.stopKeepAlive();
  }

  /** Whether the server this request came in on is draining: new work is refused with 503. */
  static refused(res: ServerResponse | undefined): boolean {
    const server = serverOf(res);
    return server !== undefined && servers.get(server)?.draining === true;
  }

  /** The scope opened for the request; a cancellation that came first is applied now. */
  bind(scope: Scope): void {
    this.#scope = scope;
    if (this.#pending !== undefined) scope.cancel(this.#pending);
  }

  /** Cancels the request's scope from outside (client gone, shutdown). */
  cancel(reason: Error): void {
    if (this.#ended) return;
    if (this.#scope === undefined) this.#pending ??= reason;
    else this.#scope.cancel(reason);
  }

  /** The response will not keep its connection alive: sent with `connection: close`. */
  stopKeepAlive(): void {
    const res = this.#res;
    if (res !== undefined && !res.headersSent) res.shouldKeepAlive = false;
  }

  /** The request scope settled: leave the registry (a drain waiting for it may end). */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const registry = this.#registry;
    if (registry === undefined) return;
    registry.lives.delete(this);
    if (!registry.draining) return;
    registry.endedDuringDrain += 1;
    // Its connection is idle once the response has gone out: close it rather than keep it alive.
    const server = serverOf(this.#res);
    this.#res?.once('finish', () => {
      setImmediate(() => server?.closeIdleConnections());
    });
    if (registry.lives.size === 0) registry.onEmpty?.();
  }
}

/**
 * One listener on the response's `close`: `onGone` when the connection closed
 * before the response finished (the client went away), else `onDone`.
 */
export function watchClient(res: ServerResponse, onGone: () => void, onDone?: () => void): void {
  if (res.destroyed && !res.writableFinished) {
    onGone();
    return;
  }
  res.once('close', () => {
    if (res.writableFinished) onDone?.();
    else onGone();
  });
}

/** An answer a request scope gives itself. */
export interface ScopeAnswer {
  readonly status: 400 | 503 | 504;
  readonly body: Readonly<Record<string, string>>;
  readonly headers: Readonly<Record<string, string>>;
}

/** 400 for a malformed deadline header. */
function badHeaderAnswer(error: { header: string; message: string }): ScopeAnswer {
  return {
    status: 400,
    body: { error: 'bad_deadline_header', header: error.header, message: error.message },
    headers: {},
  };
}

/** 503 for a request refused or cancelled by a shutdown. */
const SHUTDOWN_ANSWER: ScopeAnswer = /* @__PURE__ */ Object.freeze({
  status: 503,
  body: Object.freeze({ error: 'shutting_down' }),
  headers: Object.freeze({ connection: 'close' }),
});

/** 504 for a `TimeoutError` that escaped: the body names the scope that expired. */
export function deadlineAnswer(error: unknown, fallbackName: string): ScopeAnswer {
  const scope = error instanceof TimeoutError ? error.scopeName : fallbackName;
  return { status: 504, body: { error: 'deadline_exceeded', scope }, headers: {} };
}

/**
 * What a request scope's failure means for the response: an answer to send
 * (504, 503), `null` for nothing to send (the client went away), or
 * `undefined` when the error is the application's to handle.
 */
export function answerFor(error: unknown, scopeName: string): ScopeAnswer | null | undefined {
  if (error instanceof ClientClosedError) return null;
  if (error instanceof ShutdownError) return SHUTDOWN_ANSWER;
  if (isTimeoutError(error)) return deadlineAnswer(error, scopeName);
  return undefined;
}

/**
 * Writes an answer on a Node response: JSON, `cache-control: no-store`. When
 * headers have gone out already, a clean end would pass a cut-off body for a
 * whole one, so the response is destroyed instead.
 */
export function sendAnswer(res: ServerResponse, answer: ScopeAnswer): void {
  if (res.writableEnded || res.destroyed) return;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(answer.body);
  res.writeHead(answer.status, {
    ...answer.headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/**
 * A request scope whose owner is the response, for frameworks whose handler
 * runs in a lifecycle started by a callback (Fastify's hooks, Express's
 * `next`): `start(scope)` runs inside the scope, which lasts until the
 * response has gone out. The client going away cancels it; its failure —
 * the deadline, a cancellation — is handed to `fail` with what to answer.
 */
export function runForResponse(
  res: ServerResponse,
  config: RequestScopeConfig,
  budget: number,
  name: string,
  start: (scope: Scope) => void,
  fail: (error: unknown, answer: ScopeAnswer | null | undefined) => void,
): void {
  const life = new RequestLife(res);
  let finished: (() => void) | undefined;
  watchClient(
    res,
    () => {
      life.cancel(new ClientClosedError());
    },
    () => finished?.(),
  );
  withTimeout(
    budget,
    (scope) => {
      life.bind(scope);
      return new Promise<void>((resolve) => {
        finished = resolve;
        start(scope);
      });
    },
    scopeOptions(config, name),
  ).then(
    () => {
      life.end();
    },
    (error: unknown) => {
      life.end();
      fail(error, answerFor(error, name));
    },
  );
}
