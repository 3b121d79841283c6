/**
 * `GET /health` (and `GET /ws/health`): the server's view of itself. Always
 * answered — shedding and draining included — with 503 while it turns work away.
 */
import { pendingScopes } from 'loopsafe';
import type { AppContext } from './context.js';
import type { Reply } from './http-app.js';
import { redactSecrets } from './log.js';

/**
 * Builds the health report.
 *
 * @returns 200 `{ status: 'ok' }`, or 503 with status `shedding` or `draining`.
 */
export function health(ctx: AppContext): Reply {
  const loop = ctx.shedder.health();
  const scopes = pendingScopes();
  const status = ctx.draining ? 'draining' : loop.shedding ? 'shedding' : 'ok';
  const headers: Record<string, string> = {};
  if (status === 'shedding') headers['retry-after'] = String(Math.max(1, ctx.shedder.check().retryAfterSeconds));
  return {
    status: status === 'ok' ? 200 : 503,
    headers,
    body: {
      status,
      mode: ctx.config.mode,
      uptimeS: Math.round((performance.now() - ctx.startedAt) / 1000),
      memory: {
        rssMb: Math.round(process.memoryUsage.rss() / 1048576),
        heapUsedMb: Math.round(process.memoryUsage().heapUsed / 1048576),
      },
      eventLoop: { ...loop, shedLagMs: ctx.config.shedLagMs },
      inFlight: {
        requests: ctx.inFlight.size,
        scopes: scopes.length,
        overdueScopes: scopes.filter((s) => s.overdue).length,
      },
      retryBudget: ctx.retryBudget.snapshot(),
      websockets: { ...ctx.ws },
      upstream: {
        url: redactSecrets(ctx.upstreamUrl),
        calls: ctx.callStats.calls,
        cancelled: ctx.callStats.cancelled,
        ...(ctx.upstream === undefined ? {} : { server: { ...ctx.upstream.stats, recentBudgets: undefined } }),
      },
    },
  };
}
