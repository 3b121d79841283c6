import { connect } from 'node:net';
import { pendingScopes } from 'loopsafe';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../src/server.js';
import { connectWs, start, until, type WsClient } from './helpers.js';

let server: RunningServer;
const clients: WsClient[] = [];

beforeAll(async () => {
  server = await start({ upstreamLatencyMs: 0, heartbeatMs: 10_000, wsMaxJobs: 2 });
});
afterEach(() => {
  for (const client of clients.splice(0)) client.ws.terminate();
});
afterAll(async () => {
  await server.shutdown(0);
});

async function open(target: RunningServer = server, options = {}): Promise<WsClient> {
  const client = await connectWs(target.url, options);
  clients.push(client);
  return client;
}

const types = (client: WsClient, jobId: string): unknown[] =>
  client.events.filter((e) => e['jobId'] === jobId).map((e) => e['type']);

describe('WS /ws jobs', () => {
  it('streams agent events in order for a submitted job', async () => {
    const client = await open();
    client.ws.send(JSON.stringify({ type: 'submit', id: 'a', steps: 2, stepMs: 5 }));
    await client.next((e) => e['type'] === 'agent_completed');
    expect(types(client, 'a')).toEqual([
      'agent_started',
      'agent_thinking',
      'tool_executing',
      'tool_completed',
      'agent_thinking',
      'tool_executing',
      'tool_completed',
      'agent_completed',
    ]);
    const seqs = client.events.map((e) => e['seq']);
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(client.events[3]).toMatchObject({ type: 'tool_completed', ok: true, step: 1 });
  });

  it('ends a job at its deadline with agent_failed, and cancels its upstream call', async () => {
    const client = await open();
    const aborted = server.ctx.upstream?.stats.aborted ?? 0;
    const sentAt = performance.now();
    client.ws.send(
      JSON.stringify({ type: 'submit', id: 'slowpoke', steps: 1, stepMs: 0, deadlineMs: 150, fault: 'hang' }),
    );
    const failed = await client.next((e) => e['type'] === 'agent_failed');
    expect(performance.now() - sentAt).toBeLessThan(150 + 150);
    expect(failed).toMatchObject({ jobId: 'slowpoke', reason: 'deadline' });
    await until(() => server.ctx.upstream?.stats.aborted === aborted + 1, 1_000, 'the hung tool call aborted');
  });

  it('cancels a job on request', async () => {
    const client = await open();
    client.ws.send(JSON.stringify({ type: 'submit', id: 'c', steps: 50, stepMs: 50 }));
    await client.next((e) => e['type'] === 'agent_started');
    client.ws.send(JSON.stringify({ type: 'cancel', id: 'c' }));
    expect(await client.next((e) => e['type'] === 'agent_failed')).toMatchObject({ jobId: 'c', reason: 'cancelled' });
  });

  it('rejects a job over the per-connection limit without closing the socket', async () => {
    const client = await open();
    for (const id of ['j1', 'j2', 'j3']) client.ws.send(JSON.stringify({ type: 'submit', id, steps: 20, stepMs: 50 }));
    expect(await client.next((e) => e['type'] === 'job_rejected')).toMatchObject({ jobId: 'j3' });
    expect(client.ws.readyState).toBe(client.ws.OPEN);
  });

  it('stops producing while the peer does not read (backpressure), and finishes when it does', async () => {
    const highWater = 64 * 1024;
    const target = await start({ upstreamLatencyMs: 0, wsHighWaterBytes: highWater });
    try {
      const client = await open(target);
      const steps = 300;
      client.ws.send(
        JSON.stringify({ type: 'submit', id: 'big', steps, stepMs: 0, payloadBytes: 64 * 1024, deadlineMs: 20_000 }),
      );
      await until(() => client.events.length > 0, 2_000, 'the first event');
      client.ws.pause(); // stop reading: the kernel buffers fill, then ws buffers
      await until(() => target.ctx.ws.backpressureWaits > 0, 5_000, 'the job to wait for the reader');
      // While paused, the job is parked: it neither completes nor buffers without bound.
      const waits = target.ctx.ws.backpressureWaits;
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(target.ctx.ws.jobsRunning).toBe(1);
      expect(target.ctx.ws.backpressureWaits).toBeLessThanOrEqual(waits + 1);
      const [conn] = target.ws.connections;
      expect(conn?.ws.bufferedAmount).toBeGreaterThan(0);
      expect(conn?.ws.bufferedAmount).toBeLessThanOrEqual(highWater + 2 * (64 * 1024 + 200)); // one event over, at most
      client.ws.resume();
      await client.next((e) => e['type'] === 'agent_completed', 8_000);
      expect(types(client, 'big')).toHaveLength(2 + 3 * steps);
    } finally {
      await target.shutdown(0);
    }
  });
});

describe('WS heartbeats', () => {
  it('terminates a silent peer and ends its work', async () => {
    const target = await start({ upstreamLatencyMs: 0, heartbeatMs: 50, heartbeatTimeoutMs: 100 });
    try {
      const client = await open(target, { autoPong: false });
      client.ws.send(
        JSON.stringify({ type: 'submit', id: 'orphan', steps: 1, stepMs: 0, deadlineMs: 20_000, fault: 'hang' }),
      );
      await until(() => target.ctx.upstream?.stats.inFlight === 1, 2_000, 'the job to call the upstream');
      const { code } = await client.closed;
      expect(code).toBe(1006); // terminated, no close frame: the peer is presumed dead
      await until(() => target.ctx.ws.jobsRunning === 0, 1_000, 'the job to end');
      expect(target.ctx.ws).toMatchObject({ heartbeatTimeouts: 1, jobsCancelled: 1, connections: 0 });
      await until(() => target.ctx.upstream?.stats.aborted === 1, 1_000, 'the upstream call to be aborted');
      expect(pendingScopes().filter((s) => s.name.startsWith('ws job'))).toEqual([]);
    } finally {
      await target.shutdown(0);
    }
  });

  it('keeps a peer that answers pings', async () => {
    const target = await start({ upstreamLatencyMs: 0, heartbeatMs: 30, heartbeatTimeoutMs: 100 });
    try {
      const client = await open(target);
      client.ws.send(JSON.stringify({ type: 'submit', id: 'alive', steps: 4, stepMs: 60 }));
      await client.next((e) => e['type'] === 'agent_completed');
      expect(target.ctx.ws.heartbeatTimeouts).toBe(0);
      expect(client.ws.readyState).toBe(client.ws.OPEN);
    } finally {
      await target.shutdown(0);
    }
  });
});

describe('WS bad input', () => {
  const cases: [string, string, RegExp][] = [
    ['invalid JSON', '{nope', /not valid JSON/],
    ['a non-object', '[1,2]', /must be a JSON object/],
    ['an unknown type', '{"type":"launch"}', /type must be "submit" or "cancel", got "launch"/],
    ['an unknown field', '{"type":"submit","rm":"-rf"}', /unknown field "rm"/],
    ['too many steps', '{"type":"submit","steps":100000}', /steps must be an integer from 1 to 1000, got 100000/],
    ['a fractional stepMs', '{"type":"submit","stepMs":1.5}', /stepMs must be an integer/],
    ['a bad fault', '{"type":"submit","fault":"meteor"}', /fault must be one of/],
    ['a bad id', '{"type":"submit","id":"../../etc"}', /id must be 1-64 letters/],
  ];
  it.each(cases)('closes with 1008 and a reason for %s', async (_label, message, reason) => {
    const client = await open();
    client.ws.send(message);
    const closed = await client.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason).toMatch(reason);
  });

  it('closes with 1009 for a message over the size limit', async () => {
    const client = await open();
    client.ws.send(JSON.stringify({ type: 'submit', id: 'x'.repeat(20_000) }));
    expect((await client.closed).code).toBe(1009);
  });

  it('refuses an upgrade on another path with 404', async () => {
    const socket = connect(server.port, '127.0.0.1');
    socket.write(
      'GET /elsewhere HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    await until(() => socket.readableEnded || socket.destroyed, 2_000, 'the refusal');
    socket.destroy();
    expect(text).toMatch(/^HTTP\/1\.1 404/);
    expect(text).toMatch(/use \/ws/);
  });
});
