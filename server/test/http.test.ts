import { request } from 'node:http';
import { pendingScopes } from 'loopsafe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../src/server.js';
import { getJson, start, until } from './helpers.js';

let server: RunningServer;

beforeAll(async () => {
  server = await start({ upstreamLatencyMs: 2, upstreamSlowMs: 5_000, maxRequestTimeoutMs: 20_000 });
});
afterAll(async () => {
  await server.shutdown(0);
});

const upstreamStats = () => {
  const stats = server.ctx.upstream?.stats;
  if (stats === undefined) throw new Error('no in-process upstream');
  return stats;
};

describe('GET /health', () => {
  it('reports status, event-loop lag and utilisation, in-flight work and the retry budget', async () => {
    for (const path of ['/health', '/ws/health']) {
      const { status, body } = await getJson(`${server.url}${path}`);
      expect(status).toBe(200);
      expect(body).toMatchObject({
        status: 'ok',
        eventLoop: { shedding: false },
        inFlight: { requests: 0 },
        retryBudget: { canRetry: true },
        websockets: { connections: 0 },
      });
      const loop = body['eventLoop'] as Record<string, number>;
      expect(loop['lagP99Ms']).toBeGreaterThanOrEqual(0);
      expect(loop['utilization']).toBeGreaterThanOrEqual(0);
      expect(loop['utilization']).toBeLessThanOrEqual(1);
    }
  });
});

describe('GET /api/fanout', () => {
  it('answers with every upstream result and sends each call its remaining budget', async () => {
    const { status, body } = await getJson(`${server.url}/api/fanout?n=3`, { 'x-request-timeout': '1500' });
    expect(status).toBe(200);
    expect(body).toMatchObject({ n: 3, answered: 3, timedOut: 0, failed: 0, partial: false });
    const budgets = upstreamStats().recentBudgets.slice(-3);
    expect(budgets).toHaveLength(3);
    for (const budget of budgets) {
      expect(budget).toBeGreaterThan(1_000);
      expect(budget).toBeLessThan(1_500);
    }
  });

  it('returns partial results at the deadline: which upstreams answered, which timed out, which failed', async () => {
    const { status, body, ms } = await getJson(`${server.url}/api/fanout?n=4&fault=none,hang,fail,slow`, {
      'x-request-timeout': '300',
    });
    expect(status).toBe(200);
    expect(body).toMatchObject({ n: 4, answered: 1, timedOut: 2, failed: 1, partial: true });
    expect((body['results'] as { status: string }[]).map((r) => r.status)).toEqual([
      'ok',
      'timeout',
      'error',
      'timeout',
    ]);
    expect(ms).toBeLessThan(300 + 150);
  });

  it('never holds a request on a hung upstream past its deadline, and cancels the hung calls', async () => {
    await until(() => upstreamStats().inFlight === 0, 1_000, 'a quiet upstream');
    const before = upstreamStats().aborted;
    const { status, body, ms } = await getJson(`${server.url}/api/fanout?n=5&fault=hang`, {
      'x-request-timeout': '200',
    });
    expect(status).toBe(200);
    expect(body).toMatchObject({ answered: 0, timedOut: 5 });
    expect(ms).toBeGreaterThanOrEqual(150);
    expect(ms).toBeLessThan(200 + 150);
    // The timed-out calls' sockets were destroyed: the upstream saw its callers go.
    await until(
      () => upstreamStats().aborted === before + 5,
      1_000,
      `five aborted upstream calls (${JSON.stringify(upstreamStats())}, before ${before})`,
    );
    expect(pendingScopes()).toEqual([]);
  });

  it('uses the server default deadline without x-request-timeout, and clamps a larger one', async () => {
    const small = await getJson(`${server.url}/api/fanout?n=1`);
    expect(small.body['budgetMs']).toBeLessThanOrEqual(2_000);
    expect(small.body['budgetMs']).toBeGreaterThan(1_900);
    const large = await getJson(`${server.url}/api/fanout?n=1`, { 'x-request-timeout': '999999' });
    expect(large.body['budgetMs']).toBeLessThanOrEqual(20_000);
    expect(large.body['budgetMs']).toBeGreaterThan(19_900);
  });

  it('takes the budget from grpc-timeout and the Envoy header too, the smallest winning', async () => {
    const grpc = await getJson(`${server.url}/api/fanout?n=1`, { 'grpc-timeout': '700m' });
    expect(grpc.body['budgetMs']).toBeLessThanOrEqual(700);
    expect(grpc.body['budgetMs']).toBeGreaterThan(600);
    const both = await getJson(`${server.url}/api/fanout?n=1`, {
      'x-request-timeout': '5000',
      'x-envoy-expected-rq-timeout-ms': '900',
    });
    expect(both.body['budgetMs']).toBeLessThanOrEqual(900);
    expect(both.body['budgetMs']).toBeGreaterThan(800);
  });

  it('answers 504 at once for a budget already spent', async () => {
    const { status, body, ms } = await getJson(`${server.url}/api/fanout?n=1`, { 'x-request-timeout': '0' });
    expect(status).toBe(504);
    expect(body).toEqual({ error: 'deadline_exceeded', scope: 'GET /api/fanout' });
    expect(ms).toBeLessThan(100);
    expect(upstreamStats().inFlight).toBe(0);
  });

  it('cancels the request scope and every upstream call when the client disconnects', async () => {
    const before = { ...upstreamStats() };
    const cancelledBefore = server.ctx.callStats.cancelled;
    const req = request(`${server.url}/api/fanout?n=3&fault=hang`, { headers: { 'x-request-timeout': '8000' } });
    req.on('error', () => {
      /* we hang up on purpose */
    });
    req.end();
    await until(
      () => upstreamStats().received === before.received + 3 && server.ctx.inFlight.size === 1,
      2_000,
      'three upstream calls in flight',
    );
    expect(pendingScopes().map((s) => s.name)).toContain('GET /api/fanout');
    const disconnectedAt = performance.now();
    req.destroy();
    await until(() => upstreamStats().aborted === before.aborted + 3, 1_000, 'three aborted upstream calls');
    expect(performance.now() - disconnectedAt).toBeLessThan(500); // not at the 8 s deadline
    expect(server.ctx.callStats.cancelled).toBe(cancelledBefore + 3);
    await until(
      () => server.ctx.inFlight.size === 0 && pendingScopes().length === 0,
      1_000,
      'no request or scope left',
    );
  });
});

describe('GET /api/resilient', () => {
  it('retries a failing upstream with backoff and succeeds', async () => {
    const { status, body } = await getJson(`${server.url}/api/resilient?failures=2`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ attempts: 3, value: { id: 'flaky-3' } });
    expect(body['retries']).toHaveLength(2);
  });

  it("honours the upstream's Retry-After", async () => {
    const { status, body, ms } = await getJson(
      `${server.url}/api/resilient?fault=retry-after&failures=1&retryAfter=1`,
      { 'x-request-timeout': '3000' },
    );
    expect(status).toBe(200);
    expect(body['retries']).toEqual([{ attempt: 1, error: 'upstream_status_503', delayMs: 1_000 }]);
    expect(ms).toBeGreaterThanOrEqual(990);
  });

  it('gives up with 504 and the attempts made when the deadline comes first', async () => {
    const { status, body, ms } = await getJson(
      `${server.url}/api/resilient?fault=hang&failures=9&attemptTimeoutMs=100`,
      { 'x-request-timeout': '400' },
    );
    expect(status).toBe(504);
    expect(body['error']).toBe('deadline_exceeded');
    expect(body['attempts']).toBeGreaterThanOrEqual(2);
    expect(ms).toBeLessThan(400 + 150);
  });

  it('shares one retry budget across requests, so a dead upstream gets a bounded share of retries', async () => {
    const isolated = await start({ upstreamLatencyMs: 0 });
    try {
      const bodies: Record<string, unknown>[] = [];
      for (let i = 0; i < 12; i++) {
        const { status, body } = await getJson(`${isolated.url}/api/resilient?failures=10&maxAttempts=3`);
        expect(status).toBe(502);
        bodies.push(body);
      }
      const snapshot = isolated.ctx.retryBudget.snapshot();
      expect(snapshot.canRetry).toBe(false);
      expect(snapshot.failures).toBeLessThan(12 * 3); // without the budget: 36 upstream calls
      expect(bodies.at(-1)).toMatchObject({ error: 'retry_budget_exhausted', attempts: 1 });
    } finally {
      await isolated.shutdown(0);
    }
  });
});

describe('bad input', () => {
  const cases: [string, Record<string, string>, number, RegExp][] = [
    ['/api/fanout?n=0', {}, 400, /n must be an integer from 1 to 20, got "0"/],
    ['/api/fanout?n=abc', {}, 400, /n must be an integer/],
    ['/api/fanout?n=21', {}, 400, /from 1 to 20/],
    ['/api/fanout?n=2&n=3', {}, 400, /given once/],
    ['/api/fanout?x=1', {}, 400, /unknown query parameter "x"/],
    ['/api/fanout?fault=explode', {}, 400, /fault must be one of none, hang, slow, fail, reset, retry-after/],
    ['/api/fanout?fault=hang&faultRate=2', {}, 400, /faultRate must be a number from 0 to 1/],
    ['/api/fanout?faultRate=0.5', {}, 400, /faultRate needs fault/],
    ['/api/fanout?n=3&fault=hang,none', {}, 400, /lists 2 faults but n is 3/],
    [
      '/api/fanout',
      { 'x-request-timeout': 'soon' },
      400,
      /The x-request-timeout header must be a whole number of milliseconds/,
    ],
    ['/api/fanout', { 'x-request-timeout': '-1' }, 400, /x-request-timeout/],
    ['/api/fanout', { 'x-request-timeout': '1.5' }, 400, /x-request-timeout/],
    ['/api/resilient?maxAttempts=99', {}, 400, /maxAttempts must be an integer from 1 to 10/],
    ['/api/nothing', {}, 404, /no route/],
    ['/debug/block?ms=10', {}, 404, /no route/], // opt-in only (--debug-endpoints)
    [`/api/fanout?n=${'1'.repeat(3_000)}`, {}, 414, /at most 2048 bytes/],
  ];
  it.each(
    cases.map(([path, headers, status, message]) => ({
      label: path.length > 80 ? `${path.slice(0, 40)}…` : path,
      path,
      headers,
      status,
      message,
    })),
  )('GET $label $headers → $status with a clear message', async ({ path, headers, status, message }) => {
    const res = await getJson(`${server.url}${path}`, headers);
    expect(res.status).toBe(status);
    expect(res.body['message']).toMatch(message);
  });

  it('rejects other methods with 405 and headers over the limit with 431', async () => {
    const post = await fetch(`${server.url}/api/fanout`, { method: 'POST', signal: AbortSignal.timeout(2_000) });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    const big = await fetch(`${server.url}/health`, {
      headers: { 'x-big': 'a'.repeat(10_000) },
      signal: AbortSignal.timeout(2_000),
    });
    expect(big.status).toBe(431);
    expect(await big.json()).toMatchObject({ error: 'headers_too_large' });
  });

  it('is still healthy after all of it', async () => {
    expect((await getJson(`${server.url}/health`)).status).toBe(200);
  });
});
