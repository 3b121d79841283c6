/**
 * `GET /api/fanout?n=…&fault=…&faultRate=…`: n upstream calls at once, partial
 * results at the deadline.
 *
 * loopsafe mode: `safeGatherSettled` bounded by the request deadline alone, the
 * partial answer written when it passes; each call carries its task's signal (so
 * a timed-out call's socket is destroyed) and its remaining budget in `x-request-timeout`.
 * naive mode: `Promise.all` of the same calls, no signal, no deadline — the
 * code loopsafe replaces, kept for the comparison benchmark.
 */
import { currentScope, isTimeoutError, safeGatherSettled } from 'loopsafe';
import { itemUrl, type AppContext } from './context.js';
import { getUpstreamJson, UpstreamError, type Fault } from './upstream.js';
import { BadRequest, planFaults, type Query } from './validate.js';
import type { Reply, RouteTools } from './http-app.js';

export const FANOUT_PARAMS = ['n', 'fault', 'faultRate'] as const;

interface CallResult {
  id: number;
  fault: Fault;
  status: 'ok' | 'timeout' | 'error';
  ms?: number;
  /** A stable code (`upstream_status_500`, `upstream_reset`, `upstream_error`), never the upstream's own text. */
  error?: string;
}

function readFanout(ctx: AppContext, query: Query): Fault[] {
  const n = query.int('n', 1, ctx.config.maxFanout, 3);
  const fault = query.faultList('fault', n);
  if (Array.isArray(fault) && query.has('faultRate'))
    throw new BadRequest('faultRate cannot be combined with a list of faults');
  if (fault === undefined && query.has('faultRate')) throw new BadRequest('faultRate needs fault');
  return planFaults(n, fault, query.rate('faultRate', 1));
}

/**
 * The loopsafe fan-out; runs inside the request scope, with one deadline: the request's.
 *
 * The gather has no timeout of its own (its tasks are children of the request scope, so they stop
 * at its deadline). The handler registers its partial answer with `onDeadline`: when the request's
 * deadline passes, that answer is written from what has settled by then, however late the event
 * loop runs the deadline's timer — no earlier timer to race, so no 504 under lag.
 *
 * @returns 200 with one entry per upstream call (`ok`, `timeout` or `error`) and `partial: true` when not all answered.
 */
export async function fanout(ctx: AppContext, query: Query, tools: RouteTools): Promise<Reply> {
  const faults = readFanout(ctx, query);
  const scope = currentScope();
  const budgetMs = scope?.remaining() ?? ctx.config.requestTimeoutMs;
  const started = performance.now();
  const results: (CallResult | undefined)[] = faults.map(() => undefined);
  const reply = (): Reply => {
    const all = faults.map((fault, i): CallResult => results[i] ?? { id: i, fault, status: 'timeout' });
    const count = (status: CallResult['status']): number => all.filter((r) => r.status === status).length;
    return {
      status: 200,
      body: {
        n: faults.length,
        answered: count('ok'),
        timedOut: count('timeout'),
        failed: count('error'),
        partial: count('ok') < faults.length,
        budgetMs: Math.round(budgetMs),
        elapsedMs: Math.round(performance.now() - started),
        results: all,
      },
    };
  };
  tools.onDeadline(reply);
  await safeGatherSettled(
    faults.map((fault, i) => async (signal: AbortSignal) => {
      const t0 = performance.now();
      try {
        // The task's own scope is ambient here: the call sends the budget left for it.
        await getUpstreamJson(itemUrl(ctx, String(i), fault), { signal, agent: ctx.agent }, ctx.callStats);
        results[i] = { id: i, fault, status: 'ok', ms: Math.round(performance.now() - t0) };
      } catch (e) {
        results[i] = isTimeoutError(e)
          ? { id: i, fault, status: 'timeout' }
          : { id: i, fault, status: 'error', error: upstreamErrorCode(e) };
        throw e;
      }
    }),
    { name: 'fanout' },
  );
  return reply();
}

/** A stable, public code for a failed upstream call: the details (addresses included) stay in the server. */
export function upstreamErrorCode(e: unknown): string {
  if (e instanceof UpstreamError) return `upstream_status_${e.status}`;
  const code = (e as { code?: unknown } | null)?.code;
  if (code === 'ECONNRESET' || (e instanceof Error && e.message === 'upstream closed the connection mid-response'))
    return 'upstream_reset';
  if (code === 'ECONNREFUSED') return 'upstream_unreachable';
  return 'upstream_error';
}

/**
 * The naive fan-out (mode `naive`): `Promise.all`, no signal, no deadline.
 * One hung upstream holds the request — and its sockets — forever.
 *
 * @returns 200 when every call answered.
 */
export async function naiveFanout(ctx: AppContext, query: Query): Promise<Reply> {
  const faults = readFanout(ctx, query);
  const started = performance.now();
  await Promise.all(
    faults.map((fault, i) => getUpstreamJson(itemUrl(ctx, String(i), fault), { agent: ctx.agent }, ctx.callStats)),
  );
  return {
    status: 200,
    body: {
      n: faults.length,
      answered: faults.length,
      partial: false,
      elapsedMs: Math.round(performance.now() - started),
    },
  };
}
