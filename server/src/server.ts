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
    agent: new Agent({ keepAlive: true, maxSockets: 512 }),
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
    },
    startedAt: performance.now(),
    draining: false,
  };
  const server = createServer({ maxHeaderSize: config.maxHeaderBytes }, createRequestHandler(ctx));
  const ws = createWsEndpoint(ctx);
  server.on('upgrade', (req, socket, head) => {
    ws.handleUpgrade(req, socket, head);
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return;
    const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
    const body = JSON.stringify({
      error: tooLarge ? 'headers_too_large' : 'bad_request',
      message: tooLarge ? `request headers must be at most ${config.maxHeaderBytes} bytes` : 'malformed HTTP request',
    });
    socket.end(
      `HTTP/1.1 ${tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\nconnection: close\r\n` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
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
