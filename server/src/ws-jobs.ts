/**
 * `WS /ws`: agent-style jobs streamed as events.
 *
 * The client sends `{"type":"submit", "steps":3, "stepMs":100, "deadlineMs":5000,
 * "payloadBytes":0, "fault":"none", "id":"job-1"}` (every field optional) and receives
 * `agent_started`, then per step `agent_thinking`, `tool_executing`,
 * `tool_completed`, then `agent_completed` — or `agent_failed` with a reason
 * (`deadline`, `cancelled`, `shutdown`, `error`). `{"type":"cancel","id":…}` cancels a job.
 *
 * - Each job runs in its own scope (`withTimeout(deadlineMs)`), a child of
 *   the connection's signal: a closed or dead peer cancels all its jobs.
 * - Heartbeats: a ping every `heartbeatMs`; the pong is awaited with
 *   `safeWaitFor`, and a peer that stays silent is terminated.
 * - Backpressure: above `wsHighWaterBytes` buffered, a job waits for the
 *   socket to flush before producing its next event.
 * - Bad messages close the socket with 1008 and a reason; oversized ones
 *   with 1009 (enforced by `ws`'s `maxPayload`).
 */
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { isTimeoutError, safeSleep, safeWaitFor, withTimeout, type Scope } from 'loopsafe';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { ClientClosedError, ShutdownError } from 'loopsafe/http';
import { upstreamErrorCode } from './api-fanout.js';
import type { AllowedOrigins } from './config.js';
import { itemUrl, type AppContext } from './context.js';
import { getUpstreamJson, type Fault } from './upstream.js';
import { BadRequest, readFault, readInt } from './validate.js';

const SUBMIT_FIELDS = new Set(['type', 'id', 'steps', 'stepMs', 'deadlineMs', 'payloadBytes', 'fault']);
const CANCEL_FIELDS = new Set(['type', 'id']);

interface JobSpec {
  id: string;
  steps: number;
  stepMs: number;
  deadlineMs: number;
  payloadBytes: number;
  fault: Fault;
}

/** A stable text per reason: an error's own message (an upstream's, an address) never reaches the client. */
const FAILURE_MESSAGES = {
  shutdown: 'the server is shutting down',
  cancelled: 'cancelled by the client',
  deadline: 'the job ran past its deadline',
  error: 'the job failed',
} as const;

class JobCancelled extends Error {
  override name = 'JobCancelled';
  constructor() {
    super('cancelled by the client');
  }
}

/**
 * What one queued message costs the outbound queue beyond its bytes: an estimate of what Node and
 * `ws` keep per pending write (the write request, its callback, the buffer object). Without it, a
 * flood of small replies would pass a byte limit while taking several times as much heap.
 */
export const MESSAGE_COST_BYTES = 512;

/** One WebSocket peer: its jobs, its heartbeat and its bounded outbound queue. */
class Connection {
  readonly controller = new AbortController();
  readonly jobs = new Map<string, Scope | undefined>();
  /** Bytes handed to `ws` whose write has not reached the kernel yet, plus {@link MESSAGE_COST_BYTES} each. */
  queuedBytes = 0;
  #drainWaiters: (() => void)[] = [];
  #nextJob = 1;

  constructor(
    readonly ctx: AppContext,
    readonly ws: WebSocket,
  ) {}

  /**
   * Queues one message without waiting. Every message goes through here, job events and
   * replies alike: a queue over `wsMaxQueueBytes` means the peer is not reading, and the
   * connection is closed (1008) and dropped rather than buffered without bound.
   */
  write(event: object): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    const text = JSON.stringify(event);
    const cost = Buffer.byteLength(text) + MESSAGE_COST_BYTES;
    if (this.queuedBytes + cost > this.ctx.config.wsMaxQueueBytes) {
      this.overflow();
      return;
    }
    this.queuedBytes += cost;
    this.ws.send(text, () => {
      // Also called (with an error) when the socket goes away: the bytes are no longer ours either way.
      this.queuedBytes -= cost;
      if (this.queuedBytes <= this.ctx.config.wsHighWaterBytes) this.releaseWaiters();
    });
  }

  /** The peer does not read: close with 1008, and drop the socket soon, as it will not read the close frame either. */
  overflow(): void {
    this.ctx.ws.queueOverflows++;
    this.ctx.logger.warn('ws_queue_overflow', { queuedBytes: this.queuedBytes, jobs: this.jobs.size });
    this.ws.close(1008, `outbound queue over ${this.ctx.config.wsMaxQueueBytes} bytes: read your messages`);
    setTimeout(() => {
      this.ws.terminate();
    }, 1_000).unref();
  }

  releaseWaiters(): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Sends one event, first waiting — within the job's deadline — while more
   * than the high-water mark is queued for a slow reader.
   */
  async send(event: object): Promise<void> {
    while (this.queuedBytes > this.ctx.config.wsHighWaterBytes && this.ws.readyState === WebSocket.OPEN) {
      this.ctx.ws.backpressureWaits++;
      // Bounded by the ambient job scope; woken when the queue drains or the connection closes.
      await safeWaitFor(
        new Promise<void>((resolve) => {
          this.#drainWaiters.push(resolve);
        }),
      );
    }
    if (this.ws.readyState !== WebSocket.OPEN) throw new ClientClosedError();
    this.write(event);
  }

  /** Closes with a policy-violation code and a (≤ 123 byte) reason. */
  reject(message: string): void {
    this.ws.close(1008, Buffer.from(message).subarray(0, 123).toString());
  }

  onMessage(data: RawData, isBinary: boolean): void {
    // Closing (the queue overflowed, a bad message, the shutdown): nothing more is read.
    if (this.ws.readyState !== WebSocket.OPEN) return;
    try {
      if (isBinary) throw new BadRequest('binary messages are not accepted; send JSON text');
      let message: unknown;
      try {
        message = JSON.parse(rawText(data));
      } catch {
        throw new BadRequest('message is not valid JSON');
      }
      if (typeof message !== 'object' || message === null || Array.isArray(message))
        throw new BadRequest('message must be a JSON object');
      const fields = message as Record<string, unknown>;
      if (fields['type'] === 'submit') this.submit(this.readSubmit(fields));
      else if (fields['type'] === 'cancel') this.cancel(fields);
      else
        throw new BadRequest(
          `type must be "submit" or "cancel", got ${fields['type'] === undefined ? 'nothing' : JSON.stringify(fields['type'])}`,
        );
    } catch (e) {
      if (e instanceof BadRequest) {
        this.reject(e.message);
        return;
      }
      // A bug of ours must not take the process down: log it, end this connection only.
      this.ctx.logger.error('ws_message_failed', { error: e });
      this.ws.close(1011, 'internal error');
    }
  }

  readSubmit(fields: Record<string, unknown>): JobSpec {
    for (const key of Object.keys(fields))
      if (!SUBMIT_FIELDS.has(key)) throw new BadRequest(`unknown field ${JSON.stringify(key)}`);
    const { config } = this.ctx;
    const id = fields['id'] ?? `job-${this.#nextJob++}`;
    if (typeof id !== 'string' || !/^[\w-]{1,64}$/.test(id))
      throw new BadRequest('id must be 1-64 letters, digits, _ or -');
    if (this.jobs.has(id)) throw new BadRequest(`job ${id} is already running`);
    return {
      id,
      steps: readInt('steps', fields['steps'] ?? 3, 1, 1_000),
      stepMs: readInt('stepMs', fields['stepMs'] ?? 100, 0, 60_000),
      deadlineMs: readInt(
        'deadlineMs',
        fields['deadlineMs'] ?? Math.min(10_000, config.maxRequestTimeoutMs),
        1,
        config.maxRequestTimeoutMs,
      ),
      payloadBytes: readInt('payloadBytes', fields['payloadBytes'] ?? 0, 0, 64 * 1024),
      fault: readFault('fault', fields['fault'] ?? 'none'),
    };
  }

  cancel(fields: Record<string, unknown>): void {
    for (const key of Object.keys(fields))
      if (!CANCEL_FIELDS.has(key)) throw new BadRequest(`unknown field ${JSON.stringify(key)}`);
    const id = fields['id'];
    if (typeof id !== 'string') throw new BadRequest('cancel needs the job id');
    this.jobs.get(id)?.cancel(new JobCancelled());
  }

  submit(spec: JobSpec): void {
    const { config } = this.ctx;
    const rejected = (reason: 'shutdown' | 'limit' | 'busy', message: string): void => {
      this.ctx.ws.jobsRejected++;
      this.write({ type: 'job_rejected', jobId: spec.id, reason, message });
    };
    // The drain lets running jobs finish; it does not start new ones.
    if (this.ctx.draining) {
      rejected('shutdown', 'the server is shutting down');
      return;
    }
    if (this.jobs.size >= config.wsMaxJobs) {
      rejected('limit', `at most ${config.wsMaxJobs} jobs at once per connection`);
      return;
    }
    if (this.ctx.ws.jobsRunning >= config.wsMaxJobsTotal) {
      rejected('busy', 'the server is running as many jobs as it takes; retry later');
      return;
    }
    this.jobs.set(spec.id, undefined);
    this.ctx.ws.jobsRunning++;
    const started = performance.now();
    runJob(this, spec)
      .then(
        () => {
          this.ctx.ws.jobsCompleted++;
        },
        (e: unknown) => {
          const reason =
            e instanceof ShutdownError
              ? 'shutdown'
              : e instanceof JobCancelled
                ? 'cancelled'
                : isTimeoutError(e)
                  ? 'deadline'
                  : 'error';
          if (e instanceof ClientClosedError) this.ctx.ws.jobsCancelled++;
          else {
            this.ctx.ws.jobsFailed++;
            if (reason === 'error') this.ctx.logger.error('ws_job_failed', { jobId: spec.id, error: e });
            this.write({ type: 'agent_failed', jobId: spec.id, reason, message: FAILURE_MESSAGES[reason] });
          }
        },
      )
      .finally(() => {
        this.ctx.ws.jobsRunning--;
        this.jobs.delete(spec.id);
        this.ctx.logger.info('ws_job', {
          jobId: spec.id,
          steps: spec.steps,
          ms: Math.round(performance.now() - started),
        });
      });
  }

  /** Pings every `heartbeatMs`; terminates a peer that does not pong within `heartbeatTimeoutMs`. */
  async heartbeat(): Promise<void> {
    const { heartbeatMs, heartbeatTimeoutMs } = this.ctx.config;
    const { signal } = this.controller;
    while (!signal.aborted) {
      await safeSleep(heartbeatMs, { signal, unref: true });
      this.ws.ping();
      try {
        await safeWaitFor((pongSignal) => once(this.ws, 'pong', { signal: pongSignal }), {
          timeout: heartbeatTimeoutMs,
          signal,
          name: 'ws-pong',
        });
      } catch (e) {
        if (!isTimeoutError(e)) throw e;
        this.ctx.ws.heartbeatTimeouts++;
        this.ctx.logger.warn('ws_peer_dead', { silentMs: heartbeatTimeoutMs });
        this.ws.terminate();
        return;
      }
    }
  }
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data as ArrayBuffer).toString('utf8');
}

async function runJob(conn: Connection, spec: JobSpec): Promise<void> {
  const { ctx } = conn;
  const started = performance.now();
  let seq = 0;
  const emit = (type: string, fields: object = {}): Promise<void> =>
    conn.send({ type, jobId: spec.id, seq: ++seq, atMs: Math.round(performance.now() - started), ...fields });
  const thought = spec.payloadBytes > 0 ? 'x'.repeat(spec.payloadBytes) : 'planning the next step';
  await withTimeout(
    spec.deadlineMs,
    async (scope) => {
      conn.jobs.set(spec.id, scope);
      await emit('agent_started', { steps: spec.steps, deadlineMs: spec.deadlineMs });
      for (let step = 1; step <= spec.steps; step++) {
        await emit('agent_thinking', { step, thought });
        await safeSleep(spec.stepMs);
        await emit('tool_executing', { step, tool: 'lookup' });
        try {
          const result = await getUpstreamJson(
            itemUrl(ctx, `${spec.id}-${step}`, spec.fault),
            { signal: scope.signal, agent: ctx.agent },
            ctx.callStats,
          );
          await emit('tool_completed', { step, ok: true, result });
        } catch (e) {
          if (scope.signal.aborted) throw scope.signal.reason;
          await emit('tool_completed', { step, ok: false, error: upstreamErrorCode(e) });
        }
      }
      await emit('agent_completed', { steps: spec.steps, elapsedMs: Math.round(performance.now() - started) });
    },
    { name: `ws job ${spec.id}`, signal: conn.controller.signal },
  );
}

export interface WsEndpoint {
  /** The `upgrade` listener for the HTTP server. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Open connections. */
  readonly connections: ReadonlySet<Connection>;
  /** Cancels every job (reason: shutdown) and closes every socket with 1001. */
  closeAll(): Promise<void>;
}

const REFUSALS: Record<number, [string, string]> = {
  403: ['Forbidden', 'origin_not_allowed'],
  404: ['Not Found', 'not_found'],
  503: ['Service Unavailable', 'unavailable'],
};

function refuse(socket: Duplex, status: number, message: string, headers: Record<string, string> = {}): void {
  const [reason, code] = REFUSALS[status] ?? ['Bad Request', 'bad_request'];
  const body = JSON.stringify({ error: code, message });
  const lines = [
    `HTTP/1.1 ${status} ${reason}`,
    'connection: close',
    'content-type: application/json',
    'x-content-type-options: nosniff',
    `content-length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
}

/**
 * Whether a WebSocket upgrade's `Origin` is admitted. No `Origin`: a non-browser client, admitted
 * (it can send any header it likes anyway; the check protects browsers' users from other pages).
 * `same-origin`: a page served from the host the upgrade is addressed to. `*`: any. A list: exactly those.
 */
export function originAllowed(allowed: AllowedOrigins, origin: string | undefined, host: string | undefined): boolean {
  if (origin === undefined) return true;
  if (allowed === '*') return true;
  if (allowed === 'same-origin') {
    if (host === undefined || !URL.canParse(origin)) return false; // 'null' (a sandboxed or file: page) included
    const url = new URL(origin);
    return /^https?:$/.test(url.protocol) && url.host === host.toLowerCase();
  }
  return allowed.includes(origin);
}

/**
 * Creates the WebSocket endpoint.
 *
 * @param ctx - The server's shared state.
 * @returns The endpoint; wire `handleUpgrade` to the HTTP server's `upgrade` event.
 */
export function createWsEndpoint(ctx: AppContext): WsEndpoint {
  const wss = new WebSocketServer({ noServer: true, maxPayload: ctx.config.wsMaxMessageBytes, clientTracking: false });
  const connections = new Set<Connection>();

  wss.on('connection', (ws: WebSocket) => {
    const conn = new Connection(ctx, ws);
    connections.add(conn);
    ctx.ws.connections++;
    ws.on('message', (data, isBinary) => {
      conn.onMessage(data, isBinary);
    });
    ws.on('error', (e) => {
      ctx.logger.warn('ws_error', { error: e });
    });
    ws.on('close', (code) => {
      conn.releaseWaiters();
      connections.delete(conn);
      ctx.ws.connections--;
      conn.controller.abort(new ClientClosedError());
      ctx.logger.info('ws_closed', { code });
    });
    conn.heartbeat().catch((e: unknown) => {
      if (!conn.controller.signal.aborted) ctx.logger.error('ws_heartbeat_failed', { error: e });
    });
  });

  return {
    connections,
    handleUpgrade(req, socket, head) {
      const path = (req.url ?? '/').split('?', 1)[0];
      if (path !== '/ws') {
        refuse(socket, 404, `no WebSocket endpoint at ${path ?? ''}; use /ws`);
        return;
      }
      if (!originAllowed(ctx.config.allowedOrigins, req.headers.origin, req.headers.host)) {
        ctx.logger.warn('ws_origin_refused', { origin: req.headers.origin });
        refuse(socket, 403, 'this Origin may not open the WebSocket (see ALLOWED_ORIGINS)');
        return;
      }
      if (ctx.draining) {
        refuse(socket, 503, 'the server is shutting down', { 'retry-after': '1' });
        return;
      }
      const shed = ctx.shedder.check();
      if (shed.shed) {
        refuse(socket, 503, 'the server is overloaded; retry later', { 'retry-after': String(shed.retryAfterSeconds) });
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        wss.emit('connection', ws, req);
      });
    },
    async closeAll() {
      const closing: Promise<unknown>[] = [];
      for (const conn of connections) {
        for (const scope of conn.jobs.values()) scope?.cancel(new ShutdownError());
        closing.push(once(conn.ws, 'close'));
      }
      // Let the agent_failed notices be queued before the close frame.
      await safeSleep(0);
      for (const conn of connections) conn.ws.close(1001, 'server shutting down');
      await safeWaitFor(Promise.all(closing), { timeout: 1_000, fallback: () => undefined });
      for (const conn of connections) conn.ws.terminate();
      wss.close();
    },
  };
}
