/** Shared test helpers: a server on port 0, bounded HTTP calls, bounded polling, WebSocket clients. */
import { connect, type Socket } from 'node:net';
import { WebSocket, type ClientOptions } from 'ws';
import type { ServerConfig } from '../src/config.js';
import { startServer, type RunningServer, type StartOptions } from '../src/server.js';

export async function start(config: Partial<ServerConfig> = {}, options: StartOptions = {}): Promise<RunningServer> {
  return startServer({ port: 0, host: '127.0.0.1', log: false, ...config }, options);
}

export interface JsonResponse {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
  ms: number;
}

/** GET with a hard client-side bound, so a broken server fails the test instead of hanging it. */
export async function getJson(
  url: string,
  headers: Record<string, string> = {},
  boundMs = 5_000,
): Promise<JsonResponse> {
  const started = performance.now();
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(boundMs) });
  const body = (await res.json()) as Record<string, unknown>;
  return { status: res.status, headers: res.headers, body, ms: performance.now() - started };
}

/** Polls `predicate` every 5 ms; rejects after `boundMs`. */
export async function until(predicate: () => boolean, boundMs = 3_000, what = 'condition'): Promise<void> {
  const deadline = performance.now() + boundMs;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${boundMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export interface WsClient {
  ws: WebSocket;
  events: Record<string, unknown>[];
  /** Resolves with the close code and reason. */
  closed: Promise<{ code: number; reason: string }>;
  /** Waits (bounded) for an event matching `predicate`. */
  next(predicate: (event: Record<string, unknown>) => boolean, boundMs?: number): Promise<Record<string, unknown>>;
}

export async function connectWs(url: string, options: ClientOptions = {}): Promise<WsClient> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`, options);
  const events: Record<string, unknown>[] = [];
  ws.on('message', (data: Buffer) => {
    events.push(JSON.parse(data.toString('utf8')) as Record<string, unknown>);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString() });
    });
  });
  ws.on('error', () => {
    /* surfaced through `closed` */
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => {
      resolve();
    });
    ws.once('unexpected-response', (_req, res) => {
      reject(new Error(`upgrade refused: ${String(res.statusCode)}`));
    });
    ws.once('error', reject);
  });
  return {
    ws,
    events,
    closed,
    async next(predicate, boundMs = 3_000) {
      let found: Record<string, unknown> | undefined;
      await until(() => (found = events.find(predicate)) !== undefined, boundMs, 'a WebSocket event');
      return found as Record<string, unknown>;
    },
  };
}

/** Holds the event loop, as a CPU-bound handler would. */
export function blockLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    /* busy */
  }
}

export interface RawExchange {
  /** Everything the server sent. */
  text: string;
  /** When the server closed the connection, in ms after it opened (undefined: still open at the bound). */
  closedAfterMs: number | undefined;
}

/**
 * Opens a TCP connection, lets `drive` write to it (slowly, partly, or not at all), and collects
 * what the server sends until it closes the connection or `boundMs` passes (then the socket is destroyed).
 */
export async function rawExchange(
  port: number,
  drive: (socket: Socket) => void | Promise<void>,
  boundMs: number,
): Promise<RawExchange> {
  const socket = connect(port, '127.0.0.1');
  const opened = performance.now();
  let text = '';
  let closedAfterMs: number | undefined;
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
  });
  socket.on('error', () => {
    /* a reset is one way for the server to close */
  });
  const closed = new Promise<void>((resolve) => {
    socket.on('close', () => {
      closedAfterMs = performance.now() - opened;
      resolve();
    });
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const bound = new Promise<void>((resolve) => setTimeout(resolve, boundMs).unref());
  await Promise.race([Promise.resolve(drive(socket)).then(() => closed), closed, bound]);
  socket.destroy();
  return { text, closedAfterMs };
}
