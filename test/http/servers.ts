/**
 * Real servers on 127.0.0.1, port 0, for the HTTP tests: one app per
 * adapter (node:http with withRequestScope, Fastify, Express, Hono on
 * @hono/node-server), all serving the same routes, and an upstream that
 * counts its open sockets.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { currentScope, safeSleep, withTimeout, type Scope } from '../../src/index.js';
import { scopedFetch, withRequestScope, type RequestScopeOptions } from '../../src/http.js';
import { deadline as expressDeadline, deadlineErrors } from '../../src/express.js';
import loopsafeFastify from '../../src/fastify.js';
import { deadline as honoDeadline, type DeadlineVariables } from '../../src/hono.js';

/** What a route saw of its scope. */
export interface ScopeView {
  readonly name: string | undefined;
  readonly remaining: number;
  readonly sameAsAdapter: boolean;
  readonly budgetSent?: string | null;
}

/** What the routes record, for the tests to read. */
export interface Journal {
  /** Why each request scope was cancelled, by path. */
  readonly cancelled: Map<string, unknown>;
  /** Routes that started. */
  readonly started: string[];
}

/** The shared routes, independent of the framework. */
export interface Routes {
  /** The ambient scope, as the handler sees it (`adapterScope` is the framework's accessor). */
  scope(adapterScope: Scope | undefined): ScopeView;
  /** Waits on the ambient deadline: rejects with the request's TimeoutError. */
  hang(): Promise<never>;
  /** Never settles, and ignores every signal. */
  ignore(): Promise<never>;
  /** A nested scope's TimeoutError escapes. */
  nested(): Promise<never>;
  /** Calls the upstream through scopedFetch and returns its body. */
  upstream(path: string): Promise<unknown>;
  /** Waits `ms` then answers. */
  wait(ms: number): Promise<{ waited: number }>;
}

export function makeRoutes(upstreamUrl: () => string, journal: Journal): Routes {
  const track = (path: string): void => {
    journal.started.push(path);
    currentScope()?.signal.addEventListener('abort', function (this: AbortSignal) {
      journal.cancelled.set(path, this.reason);
    });
  };
  return {
    scope(adapterScope) {
      track('/scope');
      const scope = currentScope();
      return { name: scope?.name, remaining: scope?.remaining() ?? -1, sameAsAdapter: scope === adapterScope };
    },
    async hang() {
      track('/hang');
      await safeSleep(Number.POSITIVE_INFINITY);
      throw new Error('unreachable');
    },
    ignore() {
      track('/ignore');
      return new Promise<never>(() => {});
    },
    nested() {
      track('/nested');
      return withTimeout(20, () => new Promise<never>(() => {}), { name: 'inner' });
    },
    async upstream(path) {
      track('/upstream');
      const response = await scopedFetch(`${upstreamUrl()}${path}`);
      return response.json();
    },
    async wait(ms) {
      track('/wait');
      await safeSleep(ms);
      return { waited: ms };
    },
  };
}

export interface Running {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

function listening(server: Server): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    });
  });
}

export function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => {
    server.close(() => {
      resolve();
    });
  });
}

/** How each adapter is started: the same routes, the same options. */
export type Adapter = (routes: Routes, options: RequestScopeOptions) => Promise<Running>;

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (error) {
        reject(error);
      }
    });
    req.on('error', reject);
  });
}

export const adapters: Record<string, Adapter> = {
  async 'node:http'(routes, options) {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?', 1)[0] as string;
      withRequestScope(
        req,
        res,
        async (scope) => {
          const reply = async (): Promise<unknown> => {
            if (path === '/scope') return routes.scope(scope);
            if (path === '/body') {
              await readBody(req);
              return routes.scope(scope);
            }
            if (path === '/hang') return routes.hang();
            if (path === '/ignore') return routes.ignore();
            if (path === '/nested') return routes.nested();
            if (path === '/upstream') return routes.upstream('/hang');
            if (path === '/upstream-ok') return routes.upstream('/ok');
            if (path === '/wait') return routes.wait(Number(req.headers['x-wait'] ?? 0));
            if (path === '/fail') throw new Error('boom');
            return undefined;
          };
          const body = await reply();
          if (body === undefined) sendJson(res, 404, { error: 'not_found' });
          else sendJson(res, 200, body);
        },
        options,
      ).catch((error: unknown) => {
        sendJson(res, 500, { error: 'internal', message: String(error) });
      });
    });
    const url = await listening(server);
    return { url, server, close: () => closeServer(server) };
  },

  async fastify(routes, options) {
    const app = Fastify();
    await app.register(loopsafeFastify, options);
    app.get('/scope', (request) => routes.scope(request.scope));
    app.post('/body', (request) => routes.scope(request.scope));
    app.get('/hang', () => routes.hang());
    app.get('/ignore', () => routes.ignore());
    app.get('/nested', () => routes.nested());
    app.get('/upstream', () => routes.upstream('/hang'));
    app.get('/upstream-ok', () => routes.upstream('/ok'));
    app.get('/wait', (request) => routes.wait(Number(request.headers['x-wait'] ?? 0)));
    app.get('/fail', () => {
      throw new Error('boom');
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}`,
      server: app.server,
      close: async () => {
        app.server.closeAllConnections();
        await app.close();
      },
    };
  },

  async express(routes, options) {
    const app = express();
    app.set('env', 'test'); // its final handler logs every error otherwise
    app.use(expressDeadline(options));
    app.use(express.json());
    app.get('/scope', (req, res) => {
      res.json(routes.scope(req.scope));
    });
    app.post('/body', (req, res) => {
      res.json(routes.scope(req.scope));
    });
    app.get('/hang', async (_req, res) => {
      res.json(await routes.hang());
    });
    app.get('/ignore', async (_req, res) => {
      res.json(await routes.ignore());
    });
    app.get('/nested', async (_req, res) => {
      res.json(await routes.nested());
    });
    app.get('/upstream', async (_req, res) => {
      res.json(await routes.upstream('/hang'));
    });
    app.get('/upstream-ok', async (_req, res) => {
      res.json(await routes.upstream('/ok'));
    });
    app.get('/wait', async (req, res) => {
      res.json(await routes.wait(Number(req.headers['x-wait'] ?? 0)));
    });
    app.get('/fail', () => {
      throw new Error('boom');
    });
    app.use(deadlineErrors());
    const server = createServer(app);
    const url = await listening(server);
    return { url, server, close: () => closeServer(server) };
  },

  async hono(routes, options) {
    const app = new Hono<{ Variables: DeadlineVariables }>();
    app.onError((_error, c) => c.text('Internal Server Error', 500)); // the default one logs every error
    app.use(honoDeadline(options));
    app.get('/scope', (c) => c.json(routes.scope(c.get('scope'))));
    app.post('/body', async (c) => {
      await c.req.json();
      return c.json(routes.scope(c.get('scope')));
    });
    app.get('/hang', async (c) => c.json(await routes.hang()));
    app.get('/ignore', async (c) => c.json(await routes.ignore()));
    app.get('/nested', async (c) => c.json(await routes.nested()));
    app.get('/upstream', async (c) => c.json(await routes.upstream('/hang')));
    app.get('/upstream-ok', async (c) => c.json(await routes.upstream('/ok')));
    app.get('/wait', async (c) => c.json(await routes.wait(Number(c.req.header('x-wait') ?? 0))));
    app.get('/fail', () => {
      throw new Error('boom');
    });
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server;
    await new Promise<void>((resolve) => {
      if (server.listening) resolve();
      else server.once('listening', resolve);
    });
    const { port } = server.address() as AddressInfo;
    return { url: `http://127.0.0.1:${port}`, server, close: () => closeServer(server) };
  },
};

/** An upstream that hangs on /hang, answers /ok, and counts its open sockets and the budgets it was sent. */
export interface Upstream {
  readonly url: string;
  /** Sockets open right now. */
  openSockets(): number;
  /** Requests that reached it. */
  readonly requests: { path: string; budget: string | undefined }[];
  close(): Promise<void>;
}

export async function startUpstream(): Promise<Upstream> {
  let open = 0;
  const requests: { path: string; budget: string | undefined }[] = [];
  const server = createServer((req, res) => {
    const budget = req.headers['x-request-timeout'];
    requests.push({ path: req.url ?? '/', budget: typeof budget === 'string' ? budget : undefined });
    if (req.url === '/ok') {
      // Not kept alive: an open socket left at the upstream means a call that was not released.
      res.shouldKeepAlive = false;
      sendJson(res, 200, { ok: true, budget });
    }
    // '/hang': never answers.
  });
  server.on('connection', (socket) => {
    open += 1;
    socket.once('close', () => {
      open -= 1;
    });
  });
  const url = await listening(server);
  return { url, openSockets: () => open, requests, close: () => closeServer(server) };
}

/**
 * How long a socket of an aborted `fetch` may stay open. undici 7 (Node 24+)
 * destroys it at once; undici 6 (Node 20, 22) leaves an aborted request's
 * socket to its 4 s keep-alive timeout — a platform limit `scopedFetch`
 * cannot reach past (it holds no handle on undici's sockets).
 */
export const SOCKET_RELEASE_MS = Number(process.versions.undici?.split('.')[0] ?? 0) >= 7 ? 1_000 : 5_000;

/** Polls `condition` every few ms until it holds or `ms` pass (then it fails with `what`). */
export async function eventually(what: string, condition: () => boolean, ms = 2_000): Promise<void> {
  const until = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > until) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
