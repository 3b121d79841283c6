/**
 * Issue 17, the WebSocket findings: a bounded outbound queue for every message, a global job cap,
 * no new jobs during the drain, the Origin allow-list, strict job fields.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { RunningServer } from '../src/server.js';
import { originAllowed } from '../src/ws-jobs.js';
import { connectWs, getJson, start, until, type WsClient } from './helpers.js';

const servers: RunningServer[] = [];
const clients: WsClient[] = [];

async function server(config: Parameters<typeof start>[0] = {}): Promise<RunningServer> {
  const s = await start({ upstreamLatencyMs: 0, heartbeatMs: 60_000, ...config });
  servers.push(s);
  return s;
}
async function open(target: RunningServer, headers: Record<string, string> = {}): Promise<WsClient> {
  const client = await connectWs(target.url, { headers });
  clients.push(client);
  return client;
}
afterEach(async () => {
  for (const client of clients.splice(0)) client.ws.terminate();
  await Promise.all(servers.splice(0).map((s) => s.shutdown(0)));
});

describe('bounded outbound queue (finding 1)', () => {
  it('closes a peer that submits without reading once its queue passes wsMaxQueueBytes, and frees it', async () => {
    const target = await server({ wsMaxJobs: 1, wsHighWaterBytes: 16 * 1024, wsMaxQueueBytes: 128 * 1024 });
    const client = await open(target);
    client.ws.send(JSON.stringify({ type: 'submit', id: 'long', steps: 1_000, stepMs: 100, deadlineMs: 20_000 }));
    await client.next((e) => e['type'] === 'agent_started');
    client.ws.pause(); // never read again: the kernel's buffers fill, then the server's queue
    const [conn] = target.ws.connections;
    let sent = 0;
    // Every submit over the job limit is answered with job_rejected: replies the peer never reads.
    while (target.ctx.ws.queueOverflows === 0 && sent < 400_000) {
      if (client.ws.bufferedAmount > 256 * 1024) {
        await new Promise((resolve) => setTimeout(resolve, 1));
        continue;
      }
      client.ws.send(JSON.stringify({ type: 'submit', id: `flood-${sent++}-${'x'.repeat(40)}` }));
      if (sent % 1_000 === 0) {
        expect(conn?.queuedBytes).toBeLessThanOrEqual(128 * 1024);
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    expect(target.ctx.ws.queueOverflows).toBe(1);
    expect(target.ctx.ws.jobsRejected).toBeGreaterThan(100);
    // The connection is dropped (a close frame it will not read, then terminated) and its job cancelled.
    await until(() => target.ctx.ws.connections === 0 && target.ctx.ws.jobsRunning === 0, 3_000, 'the peer dropped');
    expect((await getJson(`${target.url}/health`)).status).toBe(200);
  }, 30_000);

  it('caps jobs across connections: job_rejected with reason busy', async () => {
    const target = await server({ wsMaxJobs: 2, wsMaxJobsTotal: 3 });
    const a = await open(target);
    const b = await open(target);
    for (const id of ['a1', 'a2']) a.ws.send(JSON.stringify({ type: 'submit', id, steps: 50, stepMs: 50 }));
    await until(() => target.ctx.ws.jobsRunning === 2, 2_000, 'two jobs');
    b.ws.send(JSON.stringify({ type: 'submit', id: 'b1', steps: 50, stepMs: 50 }));
    await until(() => target.ctx.ws.jobsRunning === 3, 2_000, 'three jobs');
    b.ws.send(JSON.stringify({ type: 'submit', id: 'b2', steps: 50, stepMs: 50 }));
    expect(await b.next((e) => e['type'] === 'job_rejected')).toMatchObject({ jobId: 'b2', reason: 'busy' });
    a.ws.send(JSON.stringify({ type: 'submit', id: 'a3' }));
    expect(await a.next((e) => e['type'] === 'job_rejected')).toMatchObject({ jobId: 'a3', reason: 'limit' });
    expect(target.ctx.ws.jobsRunning).toBe(3);
  });
});

describe('the drain refuses new work (finding 4)', () => {
  it('rejects new jobs with reason shutdown while running ones finish', async () => {
    const target = await server({ drainMs: 3_000 });
    const client = await open(target);
    client.ws.send(JSON.stringify({ type: 'submit', id: 'running', steps: 3, stepMs: 100 }));
    await client.next((e) => e['type'] === 'agent_started');
    const stopping = target.shutdown(3_000);
    await until(() => target.ctx.draining, 1_000, 'draining');
    for (let i = 0; i < 5; i++)
      client.ws.send(JSON.stringify({ type: 'submit', id: `late-${i}`, steps: 1, stepMs: 0 }));
    await until(() => client.events.filter((e) => e['type'] === 'job_rejected').length === 5, 2_000, 'five rejections');
    expect(client.events.filter((e) => e['type'] === 'job_rejected').map((e) => e['reason'])).toEqual(
      Array(5).fill('shutdown'),
    );
    expect(client.events.some((e) => e['type'] === 'agent_started' && e['jobId'] !== 'running')).toBe(false);
    await client.next((e) => e['type'] === 'agent_completed' && e['jobId'] === 'running', 3_000);
    const started = performance.now();
    await stopping;
    expect(performance.now() - started).toBeLessThan(1_500); // the drain ended with the last running job
    expect((await client.closed).code).toBe(1001);
  });
});

describe('Origin allow-list (finding 5)', () => {
  it('refuses a cross-origin browser page by default, and admits clients without Origin and same-origin pages', async () => {
    const target = await server();
    await expect(open(target, { origin: 'https://evil.example' })).rejects.toThrow(/upgrade refused: 403/);
    await expect(open(target, { origin: 'null' })).rejects.toThrow(/upgrade refused: 403/);
    const noOrigin = await open(target);
    noOrigin.ws.send(JSON.stringify({ type: 'submit', steps: 1, stepMs: 0 }));
    await noOrigin.next((e) => e['type'] === 'agent_completed');
    await open(target, { origin: target.url }); // a page served from the same host:port
  });

  it('admits exactly the listed origins, or any with *', async () => {
    const listed = await server({ allowedOrigins: ['https://app.example.com'] });
    await open(listed, { origin: 'https://app.example.com' });
    await expect(open(listed, { origin: 'https://evil.example' })).rejects.toThrow(/403/);
    await expect(open(listed, { origin: 'https://app.example.com.evil.example' })).rejects.toThrow(/403/);
    const any = await server({ allowedOrigins: '*' });
    await open(any, { origin: 'https://evil.example' });
  });

  it('decides on the Host the upgrade names', () => {
    expect(originAllowed('same-origin', 'http://localhost:3000', 'localhost:3000')).toBe(true);
    expect(originAllowed('same-origin', 'http://localhost:3000', 'LOCALHOST:3000')).toBe(true);
    expect(originAllowed('same-origin', 'http://localhost:3001', 'localhost:3000')).toBe(false);
    expect(originAllowed('same-origin', 'file://', 'localhost:3000')).toBe(false);
    expect(originAllowed('same-origin', 'http://localhost:3000', undefined)).toBe(false);
    expect(originAllowed('same-origin', undefined, undefined)).toBe(true);
  });
});

describe('strict job fields (finding 7)', () => {
  it.each([
    ['"steps": "3"', '{"type":"submit","steps":"3"}', /steps must be an integer from 1 to 1000, got "3"/],
    ['"stepMs": "0x10"', '{"type":"submit","stepMs":"0x10"}', /stepMs must be an integer/],
  ])('closes with 1008 for %s', async (_label, message, reason) => {
    const target = await server();
    const client = await open(target);
    client.ws.send(message);
    const closed = await client.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason).toMatch(reason);
  });

  it('reports failed tool calls with a stable code, not the upstream text', async () => {
    const target = await server();
    const client = await open(target);
    client.ws.send(JSON.stringify({ type: 'submit', id: 'f', steps: 1, stepMs: 0, fault: 'reset' }));
    const completed = await client.next((e) => e['type'] === 'tool_completed');
    expect(completed).toMatchObject({ ok: false, error: 'upstream_reset' });
  });
});
