/**
 * The fault-injecting upstream (a real HTTP server on 127.0.0.1, in-process)
 * and the client that calls it with an AbortSignal, so that cancellation
 * reaches the socket.
 *
 * `GET /item/:id?fault=…&delay=…&retryAfter=…` answers `{ id, servedMs }` after
 * `delay` ms (default: the configured latency), or injects a fault:
 * - `hang`: never answers (until the caller goes away);
 * - `slow`: answers after the configured slow latency;
 * - `fail`: 500 at once;
 * - `reset`: destroys the connection without a response;
 * - `retry-after`: 503 with `Retry-After: <retryAfter>` seconds (default 1).
 */
import {
  Agent,
  createServer,
  get,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { deadlineHeaders } from 'loopsafe/http';

export const FAULTS = ['none', 'hang', 'slow', 'fail', 'reset', 'retry-after'] as const;
export type Fault = (typeof FAULTS)[number];

export function isFault(value: string): value is Fault {
  return (FAULTS as readonly string[]).includes(value);
}

export interface UpstreamStats {
  /** Requests received. */
  received: number;
  /** Requests not yet answered. */
  inFlight: number;
  /** Requests answered (any status). */
  answered: number;
  /** Requests whose caller closed the connection before the answer: cancellation reached the socket. */
  aborted: number;
  /** The `x-request-timeout` budgets callers sent, most recent last (up to 100). */
  recentBudgets: number[];
}

export interface Upstream {
  readonly url: string;
  readonly stats: UpstreamStats;
  close(): Promise<void>;
}

export interface UpstreamOptions {
  host?: string;
  latencyMs: number;
  slowMs: number;
}

/**
 * Starts the fault-injecting upstream on an ephemeral port.
 *
 * @param options - Host (default 127.0.0.1), healthy and slow latencies.
 * @returns The running upstream; `close()` destroys every open connection.
 */
export async function startUpstream(options: UpstreamOptions): Promise<Upstream> {
  const stats: UpstreamStats = { received: 0, inFlight: 0, answered: 0, aborted: 0, recentBudgets: [] };
  const server = createServer((req, res) => {
    handle(req, res, options, stats);
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address}:${port}`,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}

function handle(req: IncomingMessage, res: ServerResponse, options: UpstreamOptions, stats: UpstreamStats): void {
  stats.received++;
  stats.inFlight++;
  const budget = Number(req.headers['x-request-timeout']);
  if (Number.isFinite(budget)) {
    stats.recentBudgets.push(budget);
    if (stats.recentBudgets.length > 100) stats.recentBudgets.shift();
  }
  let timer: NodeJS.Timeout | undefined;
  res.on('close', () => {
    stats.inFlight--;
    clearTimeout(timer);
    if (res.writableFinished) stats.answered++;
    else stats.aborted++;
  });
  const url = new URL(req.url ?? '/', 'http://upstream');
  const match = /^\/item\/([\w-]{1,64})$/.exec(url.pathname);
  if (req.method !== 'GET' || match === null) {
    reply(res, 404, { error: 'not_found' });
    return;
  }
  const id = match[1] ?? '';
  const fault = url.searchParams.get('fault') ?? 'none';
  const delay = Number(url.searchParams.get('delay') ?? options.latencyMs);
  const respondAfter = (ms: number): void => {
    const started = performance.now();
    timer = setTimeout(() => {
      reply(res, 200, { id, servedMs: Math.round(performance.now() - started) });
    }, ms);
  };
  switch (fault) {
    case 'hang':
      return; // the answer never comes; 'close' counts the caller giving up
    case 'slow':
      respondAfter(options.slowMs);
      return;
    case 'fail':
      reply(res, 500, { error: 'injected failure', id });
      return;
    case 'reset':
      req.socket.destroy();
      return;
    case 'retry-after':
      res.setHeader('retry-after', url.searchParams.get('retryAfter') ?? '1');
      reply(res, 503, { error: 'injected overload', id });
      return;
    default:
      respondAfter(Number.isFinite(delay) && delay >= 0 ? delay : options.latencyMs);
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** A non-2xx answer from the upstream. */
export class UpstreamError extends Error {
  override name = 'UpstreamError';
  constructor(
    readonly status: number,
    readonly retryAfter: string | undefined,
    message = `upstream answered ${status}`,
  ) {
    super(message);
  }
}

export interface UpstreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: unknown;
}

export interface CallOptions {
  signal?: AbortSignal | undefined;
  agent?: Agent | undefined;
}

const MAX_BODY_BYTES = 64 * 1024;

/** Client-side counters of {@link callUpstream}. */
export interface CallStats {
  calls: number;
  /** Calls cancelled by their signal before the answer: their sockets were destroyed. */
  cancelled: number;
}

/**
 * GETs `url` and parses its JSON body. The signal aborting destroys the
 * request's socket and rejects with the signal's reason (`===`).
 *
 * @param url - The upstream URL.
 * @param options - `signal`, `agent`. The ambient scope's remaining budget is sent in `x-request-timeout`.
 * @param stats - Counters to update.
 * @returns The status, headers and parsed body (any status).
 * @throws the signal's reason; a network error (`ECONNRESET`…); a body too large or not JSON.
 */
export function callUpstream(url: string, options: CallOptions = {}, stats?: CallStats): Promise<UpstreamResponse> {
  const { signal } = options;
  if (stats !== undefined) stats.calls++;
  return new Promise<UpstreamResponse>((resolve, reject) => {
    if (signal?.aborted === true) {
      if (stats !== undefined) stats.cancelled++;
      reject(signal.reason);
      return;
    }
    let settled = false;
    const finish = (error: unknown, value?: UpstreamResponse): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      if (value !== undefined) resolve(value);
      else reject(error);
    };
    const onAbort = (): void => {
      if (stats !== undefined && !settled) stats.cancelled++;
      req.destroy();
      finish(signal?.reason);
    };
    // The ambient scope's remaining budget (the gather task's, the retry attempt's), as loopsafe/http writes it.
    const headers: Record<string, string> = { accept: 'application/json', ...deadlineHeaders() };
    const req = get(url, { headers, agent: options.agent }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          req.destroy();
          finish(new Error(`upstream body larger than ${MAX_BODY_BYTES} bytes`));
        } else {
          chunks.push(chunk);
        }
      });
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = text === '' ? null : JSON.parse(text);
        } catch {
          finish(new Error('upstream answered with invalid JSON'));
          return;
        }
        finish(undefined, { status: res.statusCode ?? 0, headers: res.headers, body });
      });
      res.on('error', finish);
      res.on('close', () => {
        if (!res.complete) finish(new Error('upstream closed the connection mid-response'));
      });
    });
    req.on('error', finish);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Calls the upstream and insists on a 2xx answer.
 *
 * @returns The parsed body.
 * @throws {@link UpstreamError} for a non-2xx status, else as {@link callUpstream}.
 */
export async function getUpstreamJson(url: string, options: CallOptions = {}, stats?: CallStats): Promise<unknown> {
  const res = await callUpstream(url, options, stats);
  if (res.status < 200 || res.status > 299) {
    const retryAfter = res.headers['retry-after'];
    throw new UpstreamError(res.status, typeof retryAfter === 'string' ? retryAfter : undefined);
  }
  return res.body;
}
