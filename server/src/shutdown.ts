/**
 * Graceful shutdown: stop accepting, let in-flight work finish within the
 * drain deadline, cancel the rest, close WebSockets with 1001.
 */
import type { Server } from 'node:http';
import { safeSleep, safeWaitFor } from 'loopsafe';
import { ShuttingDown, type AppContext } from './context.js';
import type { WsEndpoint } from './ws-jobs.js';

/** How long cancelled requests get to write their 503 before connections are cut. */
const FLUSH_MS = 500;

function busy(ctx: AppContext): boolean {
  return ctx.inFlight.size > 0 || ctx.ws.jobsRunning > 0;
}

/**
 * Drains and stops the HTTP and WebSocket side of a server (not the upstream).
 *
 * @param ctx - The server's state; `draining` is set at once, so new requests get 503.
 * @param server - The HTTP server; closed to new connections at once.
 * @param ws - The WebSocket endpoint.
 * @param drainMs - How long in-flight work may run before it is cancelled.
 * @returns When every connection is closed.
 */
export async function drainAndClose(ctx: AppContext, server: Server, ws: WsEndpoint, drainMs: number): Promise<void> {
  ctx.draining = true;
  const closed = new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
  server.closeIdleConnections();
  const started = performance.now();
  ctx.logger.info('draining', { inFlight: ctx.inFlight.size, wsJobs: ctx.ws.jobsRunning, drainMs });
  const drained = await safeWaitFor(
    async () => {
      while (busy(ctx)) await safeSleep(10); // stops at the drain deadline
      return true;
    },
    { timeout: drainMs, fallback: () => false, name: 'drain' },
  );
  const cancelled = ctx.inFlight.size;
  for (const entry of ctx.inFlight) entry.controller.abort(new ShuttingDown());
  await ws.closeAll();
  await safeWaitFor(
    async () => {
      while (ctx.inFlight.size > 0) await safeSleep(10);
    },
    { timeout: FLUSH_MS, fallback: () => undefined, name: 'flush' },
  );
  server.closeAllConnections();
  await safeWaitFor(closed, { timeout: FLUSH_MS, fallback: () => undefined });
  ctx.logger.info('drained', { drained, cancelledRequests: cancelled, ms: Math.round(performance.now() - started) });
}
