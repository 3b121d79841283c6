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

class JobCancelled extends Error {
  override name = 'JobCancelled';
  constructor() {
    super('cancelled by the client');
  }
}

/** One WebSocket peer: its jobs, its heartbeat and its write queue. */
class Connection {
  readonly controller = new AbortController();
  readonly jobs = new Map<string, Scope | undefined>();
  #lastWrite: Promise<void> = Promise.resolve();
  #nextJob = 1;

  constructor(
    readonly ctx: AppContext,
    readonly ws: WebSocket,
  ) {}

  /** Sends without waiting: for final notices. */
  write(event: object): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.#lastWrite = new Promise<void>((resolve) => {
      // Errors surface as 'close'; the promise only tracks when the bytes left.
      this.ws.send(JSON.stringify(event), () => {
        resolve();
      });
    });
  }

  /**
   * Sends one event, first waiting — within the job's deadline — while more
   * than the high-water mark is buffered for a slow reader.
   */
  async send(event: object): Promise<void> {
    while (this.ws.bufferedAmount > this.ctx.config.wsHighWaterBytes) {
      this.ctx.ws.backpressureWaits++;
      await safeWaitFor(this.#lastWrite); // bounded by the ambient job scope
    }
    if (this.ws.readyState !== WebSocket.OPEN) throw new ClientClosedError();
    this.write(event);
  }

  /** Closes with a policy-violation code and a (≤ 123 byte) reason. */
  reject(message: string): void {
    this.ws.close(1008, Buffer.from(message).subarray(0, 123).toString());
  }

  onMessage(data: RawData, isBinary: boolean): void {
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
    if (this.jobs.size >= this.ctx.config.wsMaxJobs) {
      this.write({
        type: 'job_rejected',
        jobId: spec.id,
        reason: `at most ${this.ctx.config.wsMaxJobs} jobs at once per connection`,
      });
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
            this.write({
              type: 'agent_failed',
              jobId: spec.id,
              reason,
              message: e instanceof Error ? e.message : String(e),
            });
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
          await emit('tool_completed', { step, ok: false, error: e instanceof Error ? e.message : String(e) });
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

function refuse(socket: Duplex, status: number, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ error: status === 503 ? 'unavailable' : 'bad_request', message });
  const lines = [
    `HTTP/1.1 ${status} ${status === 503 ? 'Service Unavailable' : status === 404 ? 'Not Found' : 'Bad Request'}`,
    'connection: close',
    'content-type: application/json',
    `content-length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
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
