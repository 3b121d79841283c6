/**
 * One case table, run against every adapter over real sockets on 127.0.0.1:
 * node:http (withRequestScope), Fastify 5, Express 5 and Hono 4 on
 * @hono/node-server. Each must run the handler inside the ambient request
 * scope, answer 400 for a bad deadline header and 504 for an escaped
 * TimeoutError (naming the scope), cancel the scope when the client goes away,
 * release an upstream socket at the deadline, and drain under
 * gracefulShutdown.
 */
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TimeoutError } from '../../src/index.js';
import { ClientClosedError, gracefulShutdown, type RequestScopeOptions } from '../../src/http.js';
import { trackUnhandledRejections } from '../fixtures/observe.js';
import {
  adapters,
  eventually,
  makeRoutes,
  SOCKET_RELEASE_MS,
  startUpstream,
  type Journal,
  type Running,
  type Upstream,
} from './servers.js';

let upstream: Upstream;
beforeAll(async () => {
  upstream = await startUpstream();
});
afterAll(async () => {
  await upstream.close();
});

let rejections: ReturnType<typeof trackUnhandledRejections>;
let running: Running | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
  await eventually('the upstream has no open socket left', () => upstream.openSockets() === 0, SOCKET_RELEASE_MS);
  rejections.stop();
  expect(rejections.reasons).toEqual([]);
});

/** A GET bounded on the client side too, so a broken server fails the test instead of hanging it. */
async function get(
  path: string,
  headers: Record<string, string> = {},
  init: RequestInit = {},
): Promise<{ status: number; body: unknown; ms: number }> {
  const started = performance.now();
  const response = await fetch(`${(running as Running).url}${path}`, {
    headers,
    signal: AbortSignal.timeout(3_000),
    ...init,
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: response.status, body, ms: performance.now() - started };
}

describe.each(Object.keys(adapters))('%s', (name) => {
  const adapter = adapters[name] as (typeof adapters)[string];
  let journal: Journal;
  const start = async (options: RequestScopeOptions = {}): Promise<void> => {
    rejections = trackUnhandledRejections();
    journal = { cancelled: new Map(), started: [] };
    running = await adapter(
      makeRoutes(() => upstream.url, journal),
      options,
    );
  };

  it('runs the handler inside the ambient request scope, with the default budget', async () => {
    await start({ defaultTimeoutMs: 4_000 });
    const { status, body } = await get('/scope');
    expect(status).toBe(200);
    const view = body as { name: string; remaining: number; sameAsAdapter: boolean };
    expect(view.name).toBe('GET /scope');
    expect(view.sameAsAdapter).toBe(true);
    expect(view.remaining).toBeGreaterThan(3_000);
    expect(view.remaining).toBeLessThanOrEqual(4_000);
  });

  it('takes the budget from each header format, the smallest winning', async () => {
    await start({ defaultTimeoutMs: 60_000 });
    const cases: [Record<string, string>, number][] = [
      [{ 'x-request-timeout': '1500' }, 1_500],
      [{ 'grpc-timeout': '2S' }, 2_000],
      [{ 'grpc-timeout': '700m' }, 700],
      [{ 'grpc-timeout': '900000u' }, 900],
      [{ 'x-envoy-expected-rq-timeout-ms': '1200' }, 1_200],
      [{ 'x-request-timeout': '5000', 'grpc-timeout': '3S', 'x-envoy-expected-rq-timeout-ms': '4000' }, 3_000],
    ];
    for (const [headers, budget] of cases) {
      const { status, body } = await get('/scope', headers);
      expect(status, JSON.stringify(headers)).toBe(200);
      const { remaining } = body as { remaining: number };
      expect(remaining, JSON.stringify(headers)).toBeLessThanOrEqual(budget);
      expect(remaining, JSON.stringify(headers)).toBeGreaterThan(budget - 500);
    }
  });

  it('clamps a budget above maxTimeoutMs', async () => {
    await start({ maxTimeoutMs: 1_000 });
    const { body } = await get('/scope', { 'x-request-timeout': '3600000' });
    expect((body as { remaining: number }).remaining).toBeLessThanOrEqual(1_000);
    // The clamp bounds every request: one with no header too.
    const noHeader = await get('/scope');
    expect((noHeader.body as { remaining: number }).remaining).toBeLessThanOrEqual(1_000);
  });

  it('answers 400 for a malformed deadline header, without running the handler', async () => {
    await start();
    const bad: Record<string, string>[] = [
      { 'x-request-timeout': 'soon' },
      { 'x-request-timeout': '-5' },
      { 'x-request-timeout': '1.5' },
      { 'grpc-timeout': '5' },
      { 'grpc-timeout': '123456789S' },
      { 'grpc-timeout': '10s' },
      { 'x-envoy-expected-rq-timeout-ms': '' },
    ];
    for (const headers of bad) {
      const { status, body } = await get('/scope', headers);
      const header = Object.keys(headers)[0];
      expect(status, JSON.stringify(headers)).toBe(400);
      expect(body, JSON.stringify(headers)).toMatchObject({ error: 'bad_deadline_header', header });
    }
    expect(journal.started).toEqual([]);
  });

  it('answers 504 naming the request scope when its deadline passes, promptly', async () => {
    await start();
    for (const path of ['/hang', '/ignore']) {
      const { status, body, ms } = await get(path, { 'x-request-timeout': '80' });
      expect(status, path).toBe(504);
      expect(body, path).toEqual({ error: 'deadline_exceeded', scope: `GET ${path}` });
      expect(ms, path).toBeGreaterThanOrEqual(78);
      expect(ms, path).toBeLessThan(80 + 400);
      expect(journal.cancelled.get(path), path).toBeInstanceOf(TimeoutError);
    }
  });

  it('answers 504 naming a nested scope whose TimeoutError escapes the handler', async () => {
    await start({ defaultTimeoutMs: 5_000 });
    const { status, body } = await get('/nested');
    expect(status).toBe(504);
    expect(body).toEqual({ error: 'deadline_exceeded', scope: 'inner' });
  });

  it('leaves other errors to the framework', async () => {
    await start();
    const { status } = await get('/fail');
    expect(status).toBe(500);
  });

  it('releases the upstream socket when the deadline passes during a scopedFetch', async () => {
    await start();
    const before = upstream.requests.length;
    const { status, body } = await get('/upstream', { 'x-request-timeout': '150' });
    expect(status).toBe(504);
    expect(body).toEqual({ error: 'deadline_exceeded', scope: 'GET /upstream' });
    // The upstream was told the budget left, and its socket is closed.
    const sent = upstream.requests.slice(before).map((r) => Number(r.budget));
    expect(sent).toHaveLength(1);
    expect(sent[0]).toBeLessThanOrEqual(150);
    expect(sent[0]).toBeGreaterThan(50);
    await eventually('the upstream socket is closed', () => upstream.openSockets() === 0, SOCKET_RELEASE_MS);
  });

  it('sends the remaining budget downstream', async () => {
    await start();
    const { status, body } = await get('/upstream-ok', { 'x-request-timeout': '2000' });
    expect(status).toBe(200);
    const budget = Number((body as { budget: string }).budget);
    expect(budget).toBeLessThanOrEqual(2_000);
    expect(budget).toBeGreaterThan(1_500);
  });

  it('cancels the scope, and its upstream call, when the client goes away', async () => {
    await start({ defaultTimeoutMs: 10_000 });
    const before = upstream.requests.length;
    const { port } = new URL((running as Running).url);
    const client = httpRequest({ host: '127.0.0.1', port: Number(port), path: '/upstream' });
    client.on('error', () => {});
    client.end();
    await eventually('the upstream got the call', () => upstream.requests.length > before);
    expect(upstream.openSockets()).toBe(1);
    client.destroy();
    await eventually('the request scope was cancelled', () => journal.cancelled.has('/upstream'));
    expect(journal.cancelled.get('/upstream')).toBeInstanceOf(ClientClosedError);
    await eventually('the upstream socket is closed', () => upstream.openSockets() === 0, SOCKET_RELEASE_MS);
  });

  it('keeps the ambient scope in a handler that reads a body', async () => {
    await start({ defaultTimeoutMs: 4_000 });
    const { status, body } = await get(
      '/body',
      { 'content-type': 'application/json', 'x-request-timeout': '3000' },
      { method: 'POST', body: JSON.stringify({ hello: 'world' }) },
    );
    expect(status).toBe(200);
    expect(body).toMatchObject({ name: 'POST /body', sameAsAdapter: true });
    expect((body as { remaining: number }).remaining).toBeLessThanOrEqual(3_000);
  });

  it('gracefulShutdown answers what finishes in the drain, cancels the rest, and refuses new connections', async () => {
    await start();
    const server = (running as Running).server;
    const { port } = new URL((running as Running).url);
    const quick = get('/wait', { 'x-wait': '40' });
    const slow = get('/wait', { 'x-wait': '10000' });
    await eventually('both requests started', () => journal.started.length === 2);
    const drainMs = 200;
    const began = performance.now();
    const report = await gracefulShutdown(server, { drainMs });
    const took = performance.now() - began;
    expect(report).toEqual({ drained: 1, cancelled: 1 });
    expect(took).toBeGreaterThanOrEqual(drainMs - 2);
    expect(took).toBeLessThan(drainMs + 60);
    expect((await quick).status).toBe(200);
    const cancelled = await slow;
    expect(cancelled.status).toBe(503);
    expect(cancelled.body).toEqual({ error: 'shutting_down' });
    // New connections are refused, not answered.
    const refused = await new Promise<string>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (error: NodeJS.ErrnoException) => {
        resolve(error.code ?? 'error');
      });
    });
    expect(refused).toBe('ECONNREFUSED');
  });

  it('gracefulShutdown resolves at once when nothing is in flight', async () => {
    await start();
    const began = performance.now();
    expect(await gracefulShutdown((running as Running).server, { drainMs: 5_000 })).toEqual({
      drained: 0,
      cancelled: 0,
    });
    expect(performance.now() - began).toBeLessThan(100);
  });
});
