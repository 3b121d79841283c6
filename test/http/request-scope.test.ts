/**
 * withRequestScope and gracefulShutdown in detail, on real node:http
 * servers: bad input, the outside signal, the injected clock, a response cut
 * off at its deadline, the drain's edges; and every adapter's option checks.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { currentScope, safeSleep, type Scope } from '../../src/index.js';
import { gracefulShutdown, ShutdownError, withRequestScope, type RequestScopeOptions } from '../../src/http.js';
import { deadline as expressDeadline } from '../../src/express.js';
import loopsafeFastify from '../../src/fastify.js';
import { deadline as honoDeadline } from '../../src/hono.js';
import { createManualClock } from '../../src/testing.js';
import { trackUnhandledRejections } from '../fixtures/observe.js';
import { closeServer, eventually } from './servers.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

let server: Server | undefined;
let rejections: ReturnType<typeof trackUnhandledRejections>;
afterEach(async () => {
  if (server?.listening === true) await closeServer(server);
  server = undefined;
  rejections.stop();
  expect(rejections.reasons).toEqual([]);
});

async function serveWith(handler: Handler): Promise<string> {
  rejections = trackUnhandledRejections();
  server = createServer(handler);
  await new Promise<void>((resolve) => (server as Server).listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('withRequestScope', () => {
  it('throws at the call site for bad arguments and options', async () => {
    const base = await serveWith((req, res) => {
      const run = (options: unknown, handler: unknown = () => {}): unknown =>
        withRequestScope(req, res, handler as () => void, options as RequestScopeOptions);
      const errors: string[] = [];
      for (const [options, handler] of [
        [{ defaultTimeoutMs: -1 }, undefined],
        [{ maxTimeoutMs: Number.NaN }, undefined],
        [{ headers: ['x-timeout'] }, undefined],
        [{ name: 5 }, undefined],
        [{ signal: {} }, undefined],
        [{ clock: {} }, undefined],
        [{ timeout: 5 }, undefined],
        ['5000', undefined],
        [{}, 'not a function'],
      ] as const) {
        try {
          run(options, handler);
          errors.push('no error');
        } catch (error) {
          errors.push(`${(error as Error).name}: ${(error as Error).message}`);
        }
      }
      try {
        void withRequestScope({} as unknown as IncomingMessage, res, () => {});
      } catch (error) {
        errors.push(`${(error as Error).name}: ${(error as Error).message}`);
      }
      res.end(JSON.stringify(errors));
    });
    const errors = (await (await fetch(`${base}/`, { signal: AbortSignal.timeout(3_000) })).json()) as string[];
    expect(errors).toHaveLength(10);
    const expected = [
      /RangeError: .*`defaultTimeoutMs`.*-1/,
      /RangeError: .*`maxTimeoutMs`.*NaN/,
      /RangeError: .*`headers\[0\]`.*"x-timeout"/,
      /TypeError: .*`name`.*5/,
      /TypeError: .*`signal`/,
      /TypeError: .*`clock`/,
      /TypeError: .*`timeout`/,
      /TypeError: .*`options`.*"5000"/,
      /TypeError: .*`handler`.*"not a function"/,
      /TypeError: .*`req`/,
    ];
    expected.forEach((pattern, i) => {
      expect(errors[i]).toMatch(pattern);
    });
  });

  it('is cancelled by its outside signal, whose reason reaches the caller (===)', async () => {
    const shutdown = new AbortController();
    const reason = { why: 'maintenance' };
    let caught: unknown;
    let started = false;
    const base = await serveWith((req, res) => {
      started = true;
      withRequestScope(req, res, () => safeSleep(Number.POSITIVE_INFINITY), { signal: shutdown.signal }).catch(
        (error: unknown) => {
          caught = error;
          res.statusCode = 500;
          res.end();
        },
      );
    });
    const reply = fetch(`${base}/`, { signal: AbortSignal.timeout(3_000) });
    await eventually('the request is in flight', () => started);
    shutdown.abort(reason);
    expect((await reply).status).toBe(500);
    expect(caught).toBe(reason);
  });

  it('measures the deadline on an injected clock', async () => {
    const clock = createManualClock();
    let inside: Scope | undefined;
    const base = await serveWith((req, res) => {
      void withRequestScope(
        req,
        res,
        async (scope) => {
          inside = currentScope();
          await safeSleep(Number.POSITIVE_INFINITY);
          res.end(scope.name);
        },
        { clock, name: 'virtual' },
      );
    });
    const reply = fetch(`${base}/x?secret=1`, {
      headers: { 'x-request-timeout': '1000' },
      signal: AbortSignal.timeout(3_000),
    });
    await eventually('the scope opened', () => inside !== undefined);
    expect(inside?.remaining()).toBe(1_000);
    await clock.advance(999);
    expect(inside?.expired).toBe(false);
    await clock.advance(1);
    const response = await reply;
    expect(response.status).toBe(504);
    expect(await response.json()).toEqual({ error: 'deadline_exceeded', scope: 'virtual' });
  });

  it('names the scope by method and path, never the query', async () => {
    const base = await serveWith((req, res) => {
      void withRequestScope(req, res, (scope) => {
        res.end(scope.name);
      });
    });
    expect(await (await fetch(`${base}/users/7?token=abc`)).text()).toBe('GET /users/7');
  });

  it('destroys a response that had started when its deadline passed, rather than end it as if whole', async () => {
    const base = await serveWith((req, res) => {
      void withRequestScope(
        req,
        res,
        async () => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('partial');
          await safeSleep(Number.POSITIVE_INFINITY);
        },
        { defaultTimeoutMs: 60 },
      );
    });
    const response = await fetch(`${base}/`, { signal: AbortSignal.timeout(3_000) });
    expect(response.status).toBe(200);
    await expect(response.text()).rejects.toThrow(); // the body is cut off, not ended
  });
});

describe('gracefulShutdown', () => {
  it('throws at the call site for bad arguments', async () => {
    await serveWith((_req, res) => res.end());
    const s = server as Server;
    await expect(gracefulShutdown({} as unknown as Server, { drainMs: 10 })).rejects.toThrow(/`server`/);
    await expect(gracefulShutdown(s, undefined as never)).rejects.toThrow(/`options`/);
    await expect(gracefulShutdown(s, { drainMs: -1 })).rejects.toThrow(RangeError);
    await expect(gracefulShutdown(s, { drainMs: 10, signal: 'x' as never })).rejects.toThrow(/`signal`/);
    await expect(gracefulShutdown(s, { drainMs: 10, drain: 5 } as never)).rejects.toThrow(/drain/);
    await gracefulShutdown(s, { drainMs: 10 });
    await expect(gracefulShutdown(s, { drainMs: 10 })).rejects.toThrow(/twice/);
  });

  it('ends the drain at once when its signal aborts', async () => {
    let cancelledWith: unknown;
    let started = false;
    const base = await serveWith((req, res) => {
      started = true;
      void withRequestScope(req, res, async (scope) => {
        scope.signal.addEventListener('abort', () => {
          cancelledWith = scope.signal.reason;
        });
        await safeSleep(Number.POSITIVE_INFINITY);
      });
    });
    const reply = fetch(`${base}/`, { signal: AbortSignal.timeout(3_000) });
    await eventually('a request is in flight', () => started);
    const now = new AbortController();
    setTimeout(() => {
      now.abort();
    }, 40);
    const began = performance.now();
    expect(await gracefulShutdown(server as Server, { drainMs: 5_000, signal: now.signal })).toEqual({
      drained: 0,
      cancelled: 1,
    });
    expect(performance.now() - began).toBeLessThan(500);
    expect((await reply).status).toBe(503);
    expect(cancelledWith).toBeInstanceOf(ShutdownError);
  });

  it('answers 503 with connection: close to a request that arrives during the drain on a connection left open', async () => {
    const served: string[] = [];
    const base = await serveWith((req, res) => {
      served.push(req.url ?? '');
      void withRequestScope(req, res, async () => {
        await safeSleep(req.url === '/long' ? 300 : 0);
        res.end('ok');
      });
    });
    const { port } = new URL(base);
    const inFlight = fetch(`${base}/long`, { signal: AbortSignal.timeout(3_000) });
    // A second connection, part-way through its request's headers when the drain begins.
    const socket = connect(Number(port), '127.0.0.1');
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.on('error', () => {});
    const closed = new Promise<void>((resolve) =>
      socket.once('close', () => {
        resolve();
      }),
    );
    await new Promise<void>((resolve) =>
      socket.once('connect', () => {
        resolve();
      }),
    );
    socket.write('GET /late HTTP/1.1\r\nHost: x\r\n');
    await safeSleep(50);
    const draining = gracefulShutdown(server as Server, { drainMs: 2_000 });
    await safeSleep(20);
    socket.write('\r\n');
    expect((await inFlight).status).toBe(200);
    expect(await draining).toEqual({ drained: 1, cancelled: 0 });
    await closed;
    // A connection mid-request is not idle, so the drain does not close it: its request is
    // answered 503 and the connection closed, never served as new work.
    expect(text).toMatch(/^HTTP\/1\.1 503/);
    expect(text).toMatch(/connection: close/i);
    expect(text).toContain('{"error":"shutting_down"}');
    expect(served).toEqual(['/long', '/late']);
  });
});

describe('adapter options', () => {
  it('are checked when the middleware is made, or the plugin registered', async () => {
    rejections = trackUnhandledRejections();
    for (const make of [expressDeadline, honoDeadline]) {
      expect(() => make({ defaultTimeoutMs: -5 })).toThrow(/`defaultTimeoutMs`.*-5/);
      expect(() => make({ header: 'x' } as never)).toThrow(/`header`/);
    }
    const app = Fastify();
    await expect(app.register(loopsafeFastify, { maxTimeoutMs: 'soon' } as never)).rejects.toThrow(/`maxTimeoutMs`/);
    // Fastify's own register options are not ours to reject.
    const ok = Fastify();
    await ok.register(loopsafeFastify, { prefix: '/api', defaultTimeoutMs: 1_000 } as RequestScopeOptions);
    await ok.close();
  });
});
