/**
 * `gracefulShutdown`: drain a server's request scopes, then cancel the rest.
 *
 * @module
 */
import type { Server } from 'node:http';
import { safeWaitFor, type Clock } from '../index.js';
import { assertClock, assertDuration, assertOptions, assertSignal, describe } from '../internal/validate.js';
import { requestsOf, ShutdownError } from './request-life.js';

/**
 * Options for {@link gracefulShutdown}.
 *
 * @category HTTP
 */
export interface GracefulShutdownOptions {
  /** How long in-flight request scopes may run before they are cancelled, in milliseconds. */
  drainMs: number;
  /** Ends the drain early (a second SIGTERM): the requests still running are cancelled at once. */
  signal?: AbortSignal | undefined;
  /**
   * The clock the drain is measured on.
   * @defaultValue the system clock
   */
  clock?: Clock | undefined;
}

/**
 * What {@link gracefulShutdown} did.
 *
 * @category HTTP
 */
export interface ShutdownReport {
  /** Request scopes that finished during the drain. */
  readonly drained: number;
  /** Request scopes still running when the drain ended: cancelled with a `ShutdownError` (answered 503). */
  readonly cancelled: number;
}

const SHUTDOWN_OPTIONS = /* @__PURE__ */ new Set(['drainMs', 'signal', 'clock']);

/**
 * Shuts a `node:http` server down gracefully:
 *
 * 1. stops accepting: new connections are refused, not answered; idle
 *    keep-alive connections are closed, and every response still to be
 *    written goes out with `connection: close`;
 * 2. lets the request scopes in flight (opened by `withRequestScope` or an
 *    adapter) finish within `drainMs`; a request that arrives meanwhile on a
 *    connection kept alive is answered 503;
 * 3. cancels those still running with a {@link ShutdownError} (each is
 *    answered 503 if nothing was sent yet), and closes every connection left.
 *
 * It resolves no later than `drainMs` plus a few milliseconds, whatever the
 * handlers do: one that ignores its signal is not waited for. Requests
 * served outside a request scope are not tracked; their connections are
 * closed at the end.
 *
 * @param server - The server (`http.createServer()`, `https.createServer()`, Fastify's `app.server`, the `serve()` of `@hono/node-server`).
 * @param options - `drainMs`, `signal`, `clock`.
 * @returns `{ drained, cancelled }`: how many request scopes finished in the drain, and how many it cancelled.
 * @throws `TypeError`/`RangeError` synchronously for bad arguments.
 * @category HTTP
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { safeSleep } from 'loopsafe';
 * import { gracefulShutdown, withRequestScope } from 'loopsafe/http';
 *
 * let started = 0;
 * const server = createServer((req, res) => {
 *   started += 1;
 *   void withRequestScope(req, res, async () => {
 *     await safeSleep(req.url === '/slow' ? 60_000 : 50);
 *     res.end('done');
 *   });
 * });
 * await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
 * const { port } = server.address() as { port: number };
 * const quick = fetch(`http://127.0.0.1:${port}/quick`);
 * const slow = fetch(`http://127.0.0.1:${port}/slow`);
 * while (started < 2) await safeSleep(1); // both requests are in flight
 *
 * // On SIGTERM: process.once('SIGTERM', () => void gracefulShutdown(server, { drainMs: 10_000 }));
 * const report = await gracefulShutdown(server, { drainMs: 300 });
 * console.log(report); // { drained: 1, cancelled: 1 }
 * console.log((await quick).status, (await slow).status); // 200 503
 * ```
 */
export async function gracefulShutdown(server: Server, options: GracefulShutdownOptions): Promise<ShutdownReport> {
  const given: unknown[] = [server, options];
  if (
    typeof given[0] !== 'object' ||
    given[0] === null ||
    typeof (server as Partial<Server>).close !== 'function' ||
    typeof (server as Partial<Server>).closeAllConnections !== 'function'
  ) {
    throw new TypeError(`Expected \`server\` to be an http.Server (or https.Server), got ${describe(server)}`);
  }
  if (typeof given[1] !== 'object' || given[1] === null) {
    throw new TypeError(`Expected \`options\` to be an object with \`drainMs\`, got ${describe(options)}`);
  }
  assertOptions('gracefulShutdown', options, SHUTDOWN_OPTIONS);
  assertDuration('drainMs', options.drainMs);
  assertSignal('signal', options.signal);
  assertClock('clock', options.clock);
  const registry = requestsOf(server);
  if (registry.draining) throw new Error('gracefulShutdown was called twice for the same server');
  registry.draining = true;
  registry.endedDuringDrain = 0;

  // Stop accepting. `close` reports a server that was not listening through its callback: nothing to stop.
  server.close(() => {});
  server.closeIdleConnections();
  for (const life of registry.lives) life.stopKeepAlive();

  if (registry.lives.size > 0) {
    const emptied = new Promise<boolean>((resolve) => {
      registry.onEmpty = () => {
        resolve(true);
      };
    });
    await safeWaitFor(emptied, {
      timeout: options.drainMs,
      signal: options.signal,
      clock: options.clock,
      name: 'gracefulShutdown',
      fallback: () => false,
    }).catch(() => false); // the signal ended the drain early
    registry.onEmpty = undefined;
  }
  const drained = registry.endedDuringDrain;
  const cancelled = registry.lives.size;
  const shutdown = new ShutdownError();
  for (const life of [...registry.lives]) life.cancel(shutdown);
  // The cancelled requests write their 503s within microtasks of the cancellation; then cut what is left.
  await new Promise<void>((resolve) => {
    setImmediate(resolve);
  });
  server.closeAllConnections();
  return { drained, cancelled };
}
