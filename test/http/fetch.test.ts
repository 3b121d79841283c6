/**
 * scopedFetch against a real upstream on 127.0.0.1: the budget it sends, the
 * deadline and the signals that bound it — the request and its body — and
 * the socket released when it is aborted.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TimeoutError, withTimeout } from '../../src/index.js';
import { scopedFetch } from '../../src/http.js';
import { abortListenerCount } from '../../src/testing.js';
import { block, trackUnhandledRejections } from '../fixtures/observe.js';
import { closeServer, eventually, SOCKET_RELEASE_MS } from './servers.js';

let server: Server;
let base: string;
let open = 0;
const seen: { path: string; budget: string | undefined; custom: string | undefined }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const budget = req.headers['x-request-timeout'];
    const custom = req.headers['x-custom'];
    seen.push({
      path: req.url ?? '/',
      budget: typeof budget === 'string' ? budget : undefined,
      custom: typeof custom === 'string' ? custom : undefined,
    });
    res.shouldKeepAlive = false;
    if (req.url === '/hang') return; // never answers
    if (req.url === '/stall-body') {
      // Headers and a first chunk, then nothing: the body never ends.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first chunk\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ budget: budget ?? null }));
  });
  server.on('connection', (socket) => {
    open += 1;
    socket.once('close', () => {
      open -= 1;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => closeServer(server));

let rejections: ReturnType<typeof trackUnhandledRejections>;
afterEach(async () => {
  await eventually('the upstream has no open socket left', () => open === 0, SOCKET_RELEASE_MS);
  rejections.stop();
  expect(rejections.reasons).toEqual([]);
});
const begin = (): void => {
  rejections = trackUnhandledRejections();
};

/** Runs `fn` and returns what it rejected with (failing if it fulfilled). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('scopedFetch', () => {
  it('outside a scope is plain fetch: nothing added', async () => {
    begin();
    const response = await scopedFetch(`${base}/ok`, { signal: AbortSignal.timeout(3_000) });
    expect(await response.json()).toEqual({ budget: null });
  });

  it('sends the remaining budget, rounded down, and keeps the caller’s headers', async () => {
    begin();
    await withTimeout(2_000, async () => {
      const first = await scopedFetch(`${base}/ok`, { headers: { 'x-custom': 'kept' } });
      const budget = Number(((await first.json()) as { budget: string }).budget);
      expect(Number.isInteger(budget)).toBe(true);
      expect(budget).toBeLessThan(2_000);
      expect(budget).toBeGreaterThan(1_500);
      expect(seen.at(-1)?.custom).toBe('kept');
      // A header the caller set wins; a Request's own headers are kept.
      const set = await scopedFetch(`${base}/ok`, { headers: { 'x-request-timeout': '77' } });
      expect(await set.json()).toEqual({ budget: '77' });
      const mixedCase = await scopedFetch(`${base}/ok`, { headers: { 'X-Request-Timeout': '78' } });
      expect(await mixedCase.json()).toEqual({ budget: '78' });
      const inHeaders = await scopedFetch(`${base}/ok`, { headers: new Headers({ 'x-request-timeout': '79' }) });
      expect(await inHeaders.json()).toEqual({ budget: '79' });
      const asPairs = await scopedFetch(`${base}/ok`, { headers: [['x-custom', 'pairs']] });
      await asPairs.arrayBuffer();
      expect(seen.at(-1)?.custom).toBe('pairs');
      expect(Number(seen.at(-1)?.budget)).toBeLessThan(2_000);
      const request = new Request(`${base}/ok`, { headers: { 'x-custom': 'from-request' } });
      await (await scopedFetch(request)).arrayBuffer();
      expect(seen.at(-1)?.custom).toBe('from-request');
      expect(Number(seen.at(-1)?.budget)).toBeLessThan(2_000);
    });
  });

  it('adds no header in a scope without a deadline', async () => {
    begin();
    await withTimeout(Number.POSITIVE_INFINITY, async () => {
      expect(await (await scopedFetch(`${base}/ok`)).json()).toEqual({ budget: null });
    });
  });

  it("rejects with the scope's TimeoutError at the deadline, and releases the socket", async () => {
    begin();
    let scopeReason: unknown;
    const started = performance.now();
    const error = await rejection(
      withTimeout(
        100,
        async (scope) => {
          scope.signal.addEventListener('abort', () => {
            scopeReason = scope.signal.reason;
          });
          await scopedFetch(`${base}/hang`);
        },
        { name: 'call-upstream' },
      ),
    );
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toBe(scopeReason);
    expect((error as TimeoutError).scopeName).toBe('call-upstream');
    expect(performance.now() - started).toBeLessThan(100 + 300);
    await eventually('the socket is released', () => open === 0, SOCKET_RELEASE_MS);
  });

  it('rejects with init.signal’s own reason (===), in a scope and out of one', async () => {
    begin();
    for (const inScope of [false, true]) {
      const controller = new AbortController();
      const reason = { why: 'caller gave up' };
      setTimeout(() => {
        controller.abort(reason);
      }, 50);
      const call = (): Promise<Response> => scopedFetch(`${base}/hang`, { signal: controller.signal });
      const error = await rejection(inScope ? withTimeout(5_000, call) : call());
      expect(error, `in scope: ${inScope}`).toBe(reason);
      await eventually('the socket is released', () => open === 0, SOCKET_RELEASE_MS);
    }
  });

  it("follows a Request's own signal inside a scope, as fetch does outside one", async () => {
    begin();
    const controller = new AbortController();
    const reason = new Error('request cancelled');
    const request = new Request(`${base}/hang`, { signal: controller.signal });
    setTimeout(() => {
      controller.abort(reason);
    }, 30);
    expect(await rejection(withTimeout(5_000, () => scopedFetch(request)))).toBe(reason);
    expect(abortListenerCount(controller.signal)).toBe(0);
  });

  it('in a scope with init.signal too, the deadline still wins when it comes first', async () => {
    begin();
    const controller = new AbortController();
    const error = await rejection(
      withTimeout(60, () => scopedFetch(`${base}/hang`, { signal: controller.signal }), { name: 'both' }),
    );
    expect((error as TimeoutError).scopeName).toBe('both');
    expect(abortListenerCount(controller.signal)).toBe(0);
  });

  it('bounds the body too: a body that stalls rejects at the deadline', async () => {
    begin();
    for (const withSignal of [false, true]) {
      const own = new AbortController();
      const error = await rejection(
        withTimeout(
          150,
          async () => {
            const response = await scopedFetch(`${base}/stall-body`, withSignal ? { signal: own.signal } : {});
            expect(response.status).toBe(200);
            return response.text();
          },
          { name: 'read-body' },
        ),
      );
      expect((error as TimeoutError).scopeName, `with signal: ${withSignal}`).toBe('read-body');
      expect(abortListenerCount(own.signal)).toBe(0);
      await eventually('the socket is released', () => open === 0, SOCKET_RELEASE_MS);
    }
  });

  it('with both, init.signal aborts the body read as well, and keeps the response as fetch gave it', async () => {
    begin();
    const own = new AbortController();
    const reason = new Error('stop reading');
    await withTimeout(5_000, async () => {
      const response = await scopedFetch(`${base}/stall-body`, { signal: own.signal });
      expect(response.url).toBe(`${base}/stall-body`);
      expect(response.redirected).toBe(false);
      expect(response.headers.get('content-type')).toBe('text/plain');
      const reading = response.text();
      setTimeout(() => {
        own.abort(reason);
      }, 30);
      expect(await rejection(reading)).toBe(reason);
    });
    expect(abortListenerCount(own.signal)).toBe(0);
  });

  it('with both, leaves no listener on a long-lived signal once each body is read', async () => {
    begin();
    const longLived = new AbortController();
    await withTimeout(5_000, async () => {
      for (let i = 0; i < 20; i++) {
        const response = await scopedFetch(`${base}/ok`, { signal: longLived.signal });
        await response.json();
      }
      // A body cancelled instead of read releases too.
      const unread = await scopedFetch(`${base}/ok`, { signal: longLived.signal });
      await unread.body?.cancel();
    });
    expect(abortListenerCount(longLived.signal)).toBe(0);
  });

  it('rejects at once, sending nothing, when a CPU-bound stretch has passed the deadline', async () => {
    begin();
    const before = seen.length;
    const error = await rejection(
      withTimeout(
        20,
        () => {
          block(40); // no timer can fire
          return scopedFetch(`${base}/ok`);
        },
        { name: 'late' },
      ),
    );
    expect((error as TimeoutError).scopeName).toBe('late');
    expect(seen.length).toBe(before);
  });
});
