/**
 * A deadline travelling across three services over real sockets: A (Fastify)
 * → B (Express) → C (Hono on @hono/node-server), where C hangs. The budget
 * strictly shrinks at each hop, every hop's scope is cancelled, and A
 * answers within its budget + 100 ms.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { currentScope, safeSleep } from '../../src/index.js';
import { scopedFetch } from '../../src/http.js';
import { deadline as expressDeadline, deadlineErrors } from '../../src/express.js';
import loopsafeFastify from '../../src/fastify.js';
import { deadline as honoDeadline } from '../../src/hono.js';
import { closeServer, eventually, SOCKET_RELEASE_MS } from './servers.js';

interface Hop {
  budget: number | undefined;
  cancelled: unknown;
}
const hops: Record<'a' | 'b' | 'c', Hop> = {
  a: { budget: undefined, cancelled: undefined },
  b: { budget: undefined, cancelled: undefined },
  c: { budget: undefined, cancelled: undefined },
};

function record(hop: Hop, header: string | string[] | undefined): void {
  hop.budget = Number(header);
  currentScope()?.signal.addEventListener('abort', function (this: AbortSignal) {
    hop.cancelled = this.reason;
  });
}

const servers: Server[] = [];
const closers: (() => Promise<void>)[] = [];
let aUrl = '';
let cSockets = 0;

beforeAll(async () => {
  // C hangs: it waits on its own deadline, which the budget it was sent bounds.
  const c = new Hono();
  c.use(honoDeadline());
  c.get('/c', async (ctx) => {
    record(hops.c, ctx.req.header('x-request-timeout'));
    await safeSleep(Number.POSITIVE_INFINITY);
    return ctx.text('unreachable');
  });
  const cServer = serve({ fetch: c.fetch, port: 0, hostname: '127.0.0.1' }) as Server;
  cServer.on('connection', (socket) => {
    cSockets += 1;
    socket.once('close', () => {
      cSockets -= 1;
    });
  });
  await new Promise<void>((resolve) => {
    if (cServer.listening) resolve();
    else cServer.once('listening', resolve);
  });
  const cUrl = `http://127.0.0.1:${(cServer.address() as AddressInfo).port}`;
  servers.push(cServer);

  const b = express();
  b.use(expressDeadline());
  b.get('/b', async (req, res) => {
    record(hops.b, req.headers['x-request-timeout']);
    const response = await scopedFetch(`${cUrl}/c`);
    res.status(response.status).json(await response.json());
  });
  b.use(deadlineErrors());
  const bServer = b.listen(0, '127.0.0.1');
  await new Promise((resolve) => bServer.once('listening', resolve));
  const bUrl = `http://127.0.0.1:${(bServer.address() as AddressInfo).port}`;
  servers.push(bServer);

  const a = Fastify();
  await a.register(loopsafeFastify, { maxTimeoutMs: 10_000 });
  a.get('/a', async (request, reply) => {
    record(hops.a, request.headers['x-request-timeout']);
    const response = await scopedFetch(`${bUrl}/b`);
    return reply.code(response.status).send(await response.json());
  });
  await a.listen({ port: 0, host: '127.0.0.1' });
  aUrl = `http://127.0.0.1:${(a.server.address() as AddressInfo).port}`;
  closers.push(() => a.close());
});

afterAll(async () => {
  for (const server of servers) await closeServer(server);
  for (const close of closers) await close();
});

it('A → B → C: the budget shrinks at each hop, every scope is cancelled, A answers within budget + 100 ms', async () => {
  // A first call warms the three servers up (code compiled, connections opened) so that the one
  // measured shows the deadline's cost, not a cold start's.
  const warm = await fetch(`${aUrl}/a`, { headers: { 'x-request-timeout': '50' }, signal: AbortSignal.timeout(5_000) });
  expect(warm.status).toBe(504);
  await warm.arrayBuffer();
  for (const hop of Object.values(hops)) hop.cancelled = undefined;

  const budget = 400;
  const started = performance.now();
  const response = await fetch(`${aUrl}/a`, {
    headers: { 'x-request-timeout': String(budget) },
    signal: AbortSignal.timeout(5_000),
  });
  const took = performance.now() - started;
  const body = (await response.json()) as { error: string; scope: string };

  expect(response.status).toBe(504);
  expect(body.error).toBe('deadline_exceeded');
  expect(took).toBeLessThan(budget + 100);
  expect(took).toBeGreaterThanOrEqual(budget - 20);

  expect(hops.a.budget).toBe(budget);
  expect(hops.b.budget).toBeLessThan(hops.a.budget as number);
  expect(hops.c.budget).toBeLessThan(hops.b.budget as number);
  expect(hops.c.budget).toBeGreaterThan(budget - 100);

  await eventually('every hop’s scope was cancelled', () =>
    Object.values(hops).every((hop) => hop.cancelled !== undefined),
  );
  for (const [name, hop] of Object.entries(hops)) expect(hop.cancelled, name).toBeInstanceOf(Error);
  // Every hop's deadline is the same instant, less what the hops before it spent: the 504 names
  // whichever scope's timer the event loop ran first.
  expect(['GET /a', 'GET /b', 'GET /c']).toContain(body.scope);
  await eventually('C has no open socket left', () => cSockets === 0, SOCKET_RELEASE_MS);
});
