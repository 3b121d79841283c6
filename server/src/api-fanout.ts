/**
 * `GET /api/fanout?n=…&fault=…&faultRate=…`: n upstream calls at once, partial
 * results at the deadline.
 *
 * loopsafe mode: `safeGatherSettled` with a timeout just short of the request
 * deadline; each call carries its task's signal (so a timed-out call's socket
 * is destroyed) and its remaining budget in `x-request-timeout`.
 * naive mode: `Promise.all` of the same calls, no signal, no deadline — the
 * code loopsafe replaces, kept for the comparison benchmark.
 */
import { currentScope, isTimeoutError, safeGatherSettled } from 'loopsafe';
import { itemUrl, type AppContext } from './context.js';
import { getUpstreamJson, type Fault } from './upstream.js';
import { BadRequest, planFaults, type Query } from './validate.js';
import type { Reply } from './http-app.js';

export const FANOUT_PARAMS = ['n', 'fault', 'faultRate'] as const;

/** Time kept back from the request budget to write the partial answer. */
function reserveMs(budgetMs: number): number {
  return Math.min(25, budgetMs * 0.1);
}

interface CallResult {
  id: number;
  fault: Fault;
  status: 'ok' | 'timeout' | 'error';
  ms?: number;
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
 * The loopsafe fan-out; runs inside the request scope.
 *
 * @returns 200 with one entry per upstream call (`ok`, `timeout` or `error`) and `partial: true` when not all answered.
 */
export async function fanout(ctx: AppContext, query: Query): Promise<Reply> {
  const faults = readFanout(ctx, query);
  const scope = currentScope();
  const budgetMs = scope?.remaining() ?? ctx.config.requestTimeoutMs;
  const started = performance.now();
  const elapsed: number[] = [];
  const settled = await safeGatherSettled(
    faults.map((fault, i) => async (signal: AbortSignal) => {
      const t0 = performance.now();
      // The task's own scope is ambient here: the call sends the budget left for it.
      await getUpstreamJson(itemUrl(ctx, String(i), fault), { signal, agent: ctx.agent }, ctx.callStats);
      elapsed[i] = Math.round(performance.now() - t0);
    }),
    { timeout: Math.max(0, budgetMs - reserveMs(budgetMs)), name: 'fanout' },
  );
  const results: CallResult[] = settled.map((entry, i) => {
    const fault = faults[i] ?? 'none';
    if (entry.status === 'fulfilled') return { id: i, fault, status: 'ok', ms: elapsed[i] ?? 0 };
    if (isTimeoutError(entry.reason)) return { id: i, fault, status: 'timeout' };
    return {
      id: i,
      fault,
      status: 'error',
      error: entry.reason instanceof Error ? entry.reason.message : String(entry.reason),
    };
  });
  const count = (status: CallResult['status']): number => results.filter((r) => r.status === status).length;
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
      results,
    },
  };
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
