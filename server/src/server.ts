/**
 * Wires one reference server: the upstream (in-process unless configured),
 * the HTTP app, the WebSocket endpoint, the shedder, and its shutdown.
 */
import { Agent, createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RetryBudget } from 'loopsafe';
import { defaultConfig, type ServerConfig } from './config.js';
import type { AppContext } from './context.js';
import { createRequestHandler } from './http-app.js';
import { silentLogger, type Logger } from './log.js';
import { createLagShedder, type Shedder } from './shedding.js';
import { drainAndClose } from './shutdown.js';
import { startUpstream } from './upstream.js';
import { createWsEndpoint, type WsEndpoint } from './ws-jobs.js';

export interface RunningServer {
  /** `http://host:port` */
  readonly url: string;
  readonly port: number;
  readonly ctx: AppContext;
  readonly server: Server;
  readonly ws: WsEndpoint;
  /**
   * Graceful shutdown: drain within `drainMs` (default: the configured one),
   * cancel the rest, close sockets, stop the upstream. Idempotent.
   */
  shutdown(drainMs?: number): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  /** Replace the event-loop shedder (tests, or loopsafe's own LoadShedder). */
  shedder?: Shedder;
}

/**
 * Starts a reference server.
 *
 * @param overrides - Configuration over the embedded defaults.
 * @param options - Logger and shedder.
 * @returns The running server, listening.
 */
export async function startServer(
  overrides: Partial<ServerConfig> = {},
  options: StartOptions = {},
): Promise<RunningServer> {
  const config: ServerConfig = { ...defaultConfig, ...overrides };
  const logger = options.logger ?? silentLogger;
  const upstream =
    config.upstreamUrl === ''
      ? await startUpstream({ latencyMs: config.upstreamLatencyMs, slowMs: config.upstreamSlowMs })
      : undefined;
  const ctx: AppContext = {
    config,
    logger,
    shedder: options.shedder ?? createLagShedder({ maxLagMs: config.shedLagMs, cooldownMs: config.shedCooldownMs }),
    upstreamUrl: upstream?.url ?? config.upstreamUrl,
    upstream,
    agent: new Agent({ keepAlive: true, maxSockets: 4_096 }),
    callStats: { calls: 0, cancelled: 0 },
    retryBudget: new RetryBudget({ maxTokens: 10, tokenRatio: 0.1 }),
    inFlight: new Set(),
    ws: {
      connections: 0,
      jobsRunning: 0,
      jobsCompleted: 0,
      jobsFailed: 0,
      jobsCancelled: 0,
      heartbeatTimeouts: 0,
      backpressureWaits: 0,
      jobsRejected: 0,
      queueOverflows: 0,
    },
    startedAt: performance.now(),
    draining: false,
  };
  const server = createServer(
    {
      maxHeaderSize: config.maxHeaderBytes,
      // Slowloris, silent and slow-body connections: Node answers them through 'clientError' below (408).
      headersTimeout: config.headersTimeoutMs,
      requestTimeout: config.httpRequestTimeoutMs,
      // Node checks both timeouts every connectionsCheckingInterval (30 s by default): check often enough
      // that a connection is held no more than a quarter over its limit.
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(config.headersTimeoutMs / 4))),
    },
    createRequestHandler(ctx),
  );
  server.maxConnections = config.maxConnections;
  const ws = createWsEndpoint(ctx);
  server.on('upgrade', (req, socket, head) => {
    ws.handleUpgrade(req, socket, head);
  });
  server.on('clientError', (error: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket) => {
    if (!socket.writable) return;
    socket.end(clientErrorAnswer(config, error));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  let stopping: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    port,
    ctx,
    server,
    ws,
    shutdown(drainMs = config.drainMs) {
      stopping ??= (async () => {
        try {
          await drainAndClose(ctx, server, ws, drainMs);
        } finally {
          ctx.shedder.close();
          ctx.agent.destroy();
          await upstream?.close();
        }
      })();
      return stopping;
    },
  };
}

/**
 * The raw answer to a request Node's parser refused: 408 for a request that took too long to
 * arrive (`headersTimeout`, `requestTimeout`), 414 for a request line over `maxUrlBytes`, 431 for
 * headers over `maxHeaderBytes`, else 400.
 */
export function clientErrorAnswer(
  config: Pick<ServerConfig, 'maxHeaderBytes' | 'maxUrlBytes'>,
  error: NodeJS.ErrnoException & { rawPacket?: Buffer },
): string {
  let status = 400;
  let reason = 'Bad Request';
  let code = 'bad_request';
  let message = 'malformed HTTP request';
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    [status, reason, code, message] = [
      408,
      'Request Timeout',
      'request_timeout',
      'the request took too long to arrive',
    ];
  } else if (error.code === 'HPE_HEADER_OVERFLOW') {
    // The parser counts the request line with the headers: a long URL overflows them too. It is a
    // 414 when the packet's first line (still unfinished, or finished) is longer than the URL limit.
    // (Only a packet that starts with the request line counts: a later one may be all header lines.)
    const packet = error.rawPacket;
    const isRequestLine = packet !== undefined && /^[A-Z]{3,10} /.test(packet.subarray(0, 12).toString('latin1'));
    const lineEnd = packet?.indexOf('\r\n') ?? -1;
    const lineLength = !isRequestLine ? 0 : lineEnd === -1 ? packet.length : lineEnd;
    if (lineLength > config.maxUrlBytes) {
      [status, reason, code, message] = [
        414,
        'URI Too Long',
        'uri_too_long',
        `the URL must be at most ${config.maxUrlBytes} bytes`,
      ];
    } else {
      [status, reason, code, message] = [
        431,
        'Request Header Fields Too Large',
        'headers_too_large',
        `request headers must be at most ${config.maxHeaderBytes} bytes`,
      ];
    }
  }
  const body = JSON.stringify({ error: code, message });
  return (
    `HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-type: application/json\r\n` +
    `x-content-type-options: nosniff\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}
