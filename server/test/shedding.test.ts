import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../src/server.js';
import { blockLoop, connectWs, getJson, start, until } from './helpers.js';

let server: RunningServer;

beforeAll(async () => {
  server = await start({ upstreamLatencyMs: 0, shedLagMs: 100, shedCooldownMs: 400, debugEndpoints: true });
  await new Promise((resolve) => setTimeout(resolve, 150)); // let the monitor take a first sample
});
afterAll(async () => {
  await server.shutdown(0);
});

describe('load shedding', () => {
  it('answers normally while the event loop keeps up', async () => {
    expect((await getJson(`${server.url}/api/fanout?n=1`)).status).toBe(200);
  });

  it('sheds new requests with 503 + Retry-After after a 200 ms loop block, keeps health answerable, then recovers', async () => {
    blockLoop(200); // an artificial CPU-bound handler
    const shed = await getJson(`${server.url}/api/fanout?n=1`);
    expect(shed.status).toBe(503);
    expect(shed.body).toMatchObject({ error: 'overloaded' });
    expect(Number(shed.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);

    const health = await getJson(`${server.url}/health`);
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({ status: 'shedding', eventLoop: { shedding: true } });
    expect((health.body['eventLoop'] as { lagMaxMs: number }).lagMaxMs).toBeGreaterThan(100);

    await expect(connectWs(server.url)).rejects.toThrow(/upgrade refused: 503/);

    await until(() => !server.ctx.shedder.check().shed, 2_000, 'shedding to stop');
    expect((await getJson(`${server.url}/api/fanout?n=1`)).status).toBe(200);
    expect((await getJson(`${server.url}/health`)).status).toBe(200);
  });

  it('sheds after a block caused by a request (GET /debug/block, opt-in)', async () => {
    await until(() => !server.ctx.shedder.check().shed, 2_000, 'a calm loop');
    expect((await getJson(`${server.url}/debug/block?ms=200`)).body).toEqual({ blockedMs: 200 });
    const shed = await getJson(`${server.url}/api/resilient?failures=0`);
    expect(shed.status).toBe(503);
    expect(shed.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
  });
});
