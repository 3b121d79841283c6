/**
 * Graceful shutdown: stop accepting, let in-flight work finish within the
 * drain deadline, cancel the rest, close WebSockets with 1001. The HTTP side
 * is loopsafe/http's `gracefulShutdown`; the WebSocket jobs drain beside it.
 */
import type { Server } from 'node:http';
import { safeSleep, safeWaitFor } from 'loopsafe';
import { gracefulShutdown } from 'loopsafe/http';
import type { AppContext } from './context.js';
import type { WsEndpoint } from './ws-jobs.js';

/**
 * Drains and stops the HTTP and WebSocket side of a server (not the upstream).
 *
 * @param ctx - The server's state; `draining` is set at once, so new requests get 503.
 * @param server - The HTTP server; closed to new connections at once.
 * @param ws - The WebSocket endpoint.
 * @param drainMs - How long in-flight work may run before it is cancelled.
 * @returns When the drain is over and every connection is closed.
 */
export async function drainAndClose(ctx: AppContext, server: Server, ws: WsEndpoint, drainMs: number): Promise<void> {
  ctx.draining = true;
  const started = performance.now();
  ctx.logger.info('draining', { inFlight: ctx.inFlight.size, wsJobs: ctx.ws.jobsRunning, drainMs });
  const [http, wsDrained] = await Promise.all([
    // In-flight request scopes get `drainMs`; the ones still running are cancelled (answered 503).
    gracefulShutdown(server, { drainMs }),
    safeWaitFor(
      async () => {
        while (ctx.ws.jobsRunning > 0) await safeSleep(10); // stops at the drain deadline
        return true;
      },
      { timeout: drainMs, fallback: () => false, name: 'drain websocket jobs' },
    ),
  ]);
  await ws.closeAll();
  ctx.logger.info('drained', {
    drained: http.drained,
    cancelledRequests: http.cancelled,
    wsDrained,
    ms: Math.round(performance.now() - started),
  });
}
