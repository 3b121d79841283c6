/**
 * Server configuration: embedded defaults, overridden by environment variables,
 * overridden by CLI flags (`--port 8080` or `--port=8080`). Every value is
 * validated; a bad one is a {@link ConfigError} naming the setting and the value.
 */

/** How `/api/fanout` calls its upstreams: with loopsafe, or with a plain `Promise.all` (for comparison). */
export type FanoutMode = 'loopsafe' | 'naive';

/** Origins a browser page may open `/ws` from: `same-origin` (the default), `*`, or a list. */
export type AllowedOrigins = 'same-origin' | '*' | readonly string[];

export interface ServerConfig {
  /** TCP port; `0` picks a free one. */
  port: number;
  host: string;
  /** Deadline of a request that sends no `x-request-timeout`. */
  requestTimeoutMs: number;
  /** Largest accepted `x-request-timeout`; larger values are clamped to it. */
  maxRequestTimeoutMs: number;
  /** Largest `n` accepted by `/api/fanout`. */
  maxFanout: number;
  /** Base URL of an external upstream; empty: start the in-process fault-injecting upstream. */
  upstreamUrl: string;
  /** Latency of a healthy upstream answer. */
  upstreamLatencyMs: number;
  /** Latency of the `slow` fault. */
  upstreamSlowMs: number;
  /** Event-loop lag (ms) above which new requests are shed. */
  shedLagMs: number;
  /** How long shedding lasts after the lag was last seen above the threshold. */
  shedCooldownMs: number;
  /** WebSocket ping interval. */
  heartbeatMs: number;
  /** How long a pong may take before the peer is declared dead. */
  heartbeatTimeoutMs: number;
  /** Largest WebSocket message accepted (bytes); larger ones close the socket with 1009. */
  wsMaxMessageBytes: number;
  /** Jobs one WebSocket may run at once. */
  wsMaxJobs: number;
  /** Bytes buffered on a WebSocket above which a job waits for the peer to read. */
  wsHighWaterBytes: number;
  /** Largest outbound queue of one WebSocket (bytes, with a per-message cost); over it, the socket is closed with 1008. */
  wsMaxQueueBytes: number;
  /** Jobs running at once across every WebSocket; more get `job_rejected` with reason `busy`. */
  wsMaxJobsTotal: number;
  /** Origins admitted on the WebSocket upgrade (a request without `Origin`, from a non-browser client, always is). */
  allowedOrigins: AllowedOrigins;
  /** Time a client has to send the request headers (Node's `headersTimeout`); then 408. */
  headersTimeoutMs: number;
  /** Time a client has to send the whole request, headers and body (Node's `requestTimeout`); then 408. */
  httpRequestTimeoutMs: number;
  /** Largest request body (bytes); larger: 413 and the connection is closed. */
  maxBodyBytes: number;
  /** Open TCP connections at once (HTTP and WebSocket); more are dropped (Node's `maxConnections`). */
  maxConnections: number;
  /** How long a graceful shutdown lets in-flight work finish before cancelling it. */
  drainMs: number;
  /** Largest total size of request headers (bytes). */
  maxHeaderBytes: number;
  /** Largest request URL, path and query (bytes). */
  maxUrlBytes: number;
  /** Structured JSON logs on stdout. */
  log: boolean;
  mode: FanoutMode;
  /** Expose `GET /debug/block?ms=` (blocks the event loop, to demonstrate shedding). */
  debugEndpoints: boolean;
}

export const defaultConfig: Readonly<ServerConfig> = Object.freeze({
  port: 3000,
  host: '127.0.0.1',
  requestTimeoutMs: 2_000,
  maxRequestTimeoutMs: 30_000,
  maxFanout: 20,
  upstreamUrl: '',
  upstreamLatencyMs: 5,
  upstreamSlowMs: 1_000,
  shedLagMs: 100,
  shedCooldownMs: 1_000,
  heartbeatMs: 15_000,
  heartbeatTimeoutMs: 5_000,
  wsMaxMessageBytes: 16 * 1024,
  wsMaxJobs: 4,
  wsHighWaterBytes: 1024 * 1024,
  wsMaxQueueBytes: 2 * 1024 * 1024,
  wsMaxJobsTotal: 256,
  allowedOrigins: 'same-origin',
  headersTimeoutMs: 10_000,
  httpRequestTimeoutMs: 30_000,
  maxBodyBytes: 16 * 1024,
  maxConnections: 1_024,
  drainMs: 10_000,
  maxHeaderBytes: 8 * 1024,
  maxUrlBytes: 2 * 1024,
  log: true,
  mode: 'loopsafe',
  debugEndpoints: false,
});

/** The largest WebSocket event a job sends (its 64 KiB payload, the other fields, the per-message cost). */
export const MAX_EVENT_BYTES = 66 * 1024;

type Kind = 'int' | 'string' | 'bool' | 'mode' | 'url' | 'origins';
interface Setting {
  key: keyof ServerConfig;
  env: string;
  flag: string;
  kind: Kind;
  min?: number;
  max?: number;
  help: string;
}

/** Every setting, its environment variable and CLI flag (also the `--help` text). */
export const settings: readonly Setting[] = [
  { key: 'port', env: 'PORT', flag: '--port', kind: 'int', min: 0, max: 65_535, help: 'TCP port (0: any free port)' },
  { key: 'host', env: 'HOST', flag: '--host', kind: 'string', help: 'interface to listen on' },
  {
    key: 'requestTimeoutMs',
    env: 'REQUEST_TIMEOUT_MS',
    flag: '--request-timeout-ms',
    kind: 'int',
    min: 1,
    max: 3_600_000,
    help: 'default request deadline',
  },
  {
    key: 'maxRequestTimeoutMs',
    env: 'MAX_REQUEST_TIMEOUT_MS',
    flag: '--max-request-timeout-ms',
    kind: 'int',
    min: 1,
    max: 3_600_000,
    help: 'x-request-timeout is clamped to this',
  },
  {
    key: 'maxFanout',
    env: 'MAX_FANOUT',
    flag: '--max-fanout',
    kind: 'int',
    min: 1,
    max: 1_000,
    help: 'largest n of /api/fanout',
  },
  {
    key: 'upstreamUrl',
    env: 'UPSTREAM_URL',
    flag: '--upstream-url',
    kind: 'url',
    help: 'external upstream (default: in-process)',
  },
  {
    key: 'upstreamLatencyMs',
    env: 'UPSTREAM_LATENCY_MS',
    flag: '--upstream-latency-ms',
    kind: 'int',
    min: 0,
    max: 60_000,
    help: 'healthy upstream latency',
  },
  {
    key: 'upstreamSlowMs',
    env: 'UPSTREAM_SLOW_MS',
    flag: '--upstream-slow-ms',
    kind: 'int',
    min: 0,
    max: 600_000,
    help: 'latency of the slow fault',
  },
  {
    key: 'shedLagMs',
    env: 'SHED_LAG_MS',
    flag: '--shed-lag-ms',
    kind: 'int',
    min: 1,
    max: 60_000,
    help: 'event-loop lag that starts shedding',
  },
  {
    key: 'shedCooldownMs',
    env: 'SHED_COOLDOWN_MS',
    flag: '--shed-cooldown-ms',
    kind: 'int',
    min: 0,
    max: 600_000,
    help: 'shedding lasts this long after lag',
  },
  {
    key: 'heartbeatMs',
    env: 'HEARTBEAT_MS',
    flag: '--heartbeat-ms',
    kind: 'int',
    min: 10,
    max: 600_000,
    help: 'WebSocket ping interval',
  },
  {
    key: 'heartbeatTimeoutMs',
    env: 'HEARTBEAT_TIMEOUT_MS',
    flag: '--heartbeat-timeout-ms',
    kind: 'int',
    min: 10,
    max: 600_000,
    help: 'pong deadline',
  },
  {
    key: 'wsMaxMessageBytes',
    env: 'WS_MAX_MESSAGE_BYTES',
    flag: '--ws-max-message-bytes',
    kind: 'int',
    min: 64,
    max: 16 * 1024 * 1024,
    help: 'largest WebSocket message',
  },
  {
    key: 'wsMaxJobs',
    env: 'WS_MAX_JOBS',
    flag: '--ws-max-jobs',
    kind: 'int',
    min: 1,
    max: 1_000,
    help: 'concurrent jobs per WebSocket',
  },
  {
    key: 'wsHighWaterBytes',
    env: 'WS_HIGH_WATER_BYTES',
    flag: '--ws-high-water-bytes',
    kind: 'int',
    min: 1_024,
    max: 256 * 1024 * 1024,
    help: 'WebSocket backpressure threshold',
  },
  {
    key: 'wsMaxQueueBytes',
    env: 'WS_MAX_QUEUE_BYTES',
    flag: '--ws-max-queue-bytes',
    kind: 'int',
    min: 4 * 1_024,
    max: 1024 * 1024 * 1024,
    help: 'WebSocket outbound queue limit (bytes + 512 per message); over it: close 1008',
  },
  {
    key: 'wsMaxJobsTotal',
    env: 'WS_MAX_JOBS_TOTAL',
    flag: '--ws-max-jobs-total',
    kind: 'int',
    min: 1,
    max: 1_000_000,
    help: 'concurrent jobs across all WebSockets (more: job_rejected, reason busy)',
  },
  {
    key: 'allowedOrigins',
    env: 'ALLOWED_ORIGINS',
    flag: '--allowed-origins',
    kind: 'origins',
    help: "Origins admitted on /ws: 'same-origin', '*', or a comma-separated list (no Origin: always admitted)",
  },
  {
    key: 'headersTimeoutMs',
    env: 'HEADERS_TIMEOUT_MS',
    flag: '--headers-timeout-ms',
    kind: 'int',
    min: 100,
    max: 600_000,
    help: 'time to send the request headers (then 408)',
  },
  {
    key: 'httpRequestTimeoutMs',
    env: 'HTTP_REQUEST_TIMEOUT_MS',
    flag: '--http-request-timeout-ms',
    kind: 'int',
    min: 100,
    max: 3_600_000,
    help: 'time to send the whole request, body included (then 408)',
  },
  {
    key: 'maxBodyBytes',
    env: 'MAX_BODY_BYTES',
    flag: '--max-body-bytes',
    kind: 'int',
    min: 0,
    max: 1024 * 1024 * 1024,
    help: 'largest request body (larger: 413, connection closed)',
  },
  {
    key: 'maxConnections',
    env: 'MAX_CONNECTIONS',
    flag: '--max-connections',
    kind: 'int',
    min: 1,
    max: 1_000_000,
    help: 'open TCP connections at once (more are dropped)',
  },
  {
    key: 'drainMs',
    env: 'DRAIN_MS',
    flag: '--drain-ms',
    kind: 'int',
    min: 0,
    max: 600_000,
    help: 'graceful-shutdown drain deadline',
  },
  {
    key: 'maxHeaderBytes',
    env: 'MAX_HEADER_BYTES',
    flag: '--max-header-bytes',
    kind: 'int',
    min: 1_024,
    max: 1024 * 1024,
    help: 'largest request headers',
  },
  {
    key: 'maxUrlBytes',
    env: 'MAX_URL_BYTES',
    flag: '--max-url-bytes',
    kind: 'int',
    min: 64,
    max: 1024 * 1024,
    help: 'largest request URL',
  },
  { key: 'log', env: 'LOG', flag: '--log', kind: 'bool', help: 'JSON logs on stdout (--no-log, LOG=0 to turn off)' },
  {
    key: 'mode',
    env: 'FANOUT_MODE',
    flag: '--mode',
    kind: 'mode',
    help: "'loopsafe' or 'naive' (plain Promise.all, for comparison)",
  },
  {
    key: 'debugEndpoints',
    env: 'DEBUG_ENDPOINTS',
    flag: '--debug-endpoints',
    kind: 'bool',
    help: 'expose GET /debug/block?ms=',
  },
];

/** A bad setting: the message names it and shows the value. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

function parseValue(setting: Setting, raw: string, source: string): ServerConfig[keyof ServerConfig] {
  const bad = (expected: string): never => {
    throw new ConfigError(`${source} must be ${expected}, got ${JSON.stringify(raw)}`);
  };
  switch (setting.kind) {
    case 'int': {
      if (!/^\d{1,10}$/.test(raw)) bad('a non-negative integer');
      const value = Number(raw);
      const min = setting.min ?? 0;
      const max = setting.max ?? Number.MAX_SAFE_INTEGER;
      if (value < min || value > max) bad(`an integer between ${min} and ${max}`);
      return value;
    }
    case 'bool': {
      const lower = raw.toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(lower)) return true;
      if (['0', 'false', 'no', 'off'].includes(lower)) return false;
      return bad('one of 1/0, true/false, yes/no, on/off');
    }
    case 'mode':
      if (raw !== 'loopsafe' && raw !== 'naive') bad("'loopsafe' or 'naive'");
      return raw;
    case 'url':
      if (raw === '') return raw;
      if (!URL.canParse(raw) || !/^https?:$/.test(new URL(raw).protocol)) bad('an http(s) URL');
      return raw.replace(/\/+$/, '');
    case 'string':
      if (raw === '') bad('a non-empty string');
      return raw;
    case 'origins': {
      if (raw === 'same-origin' || raw === '*') return raw;
      const list = raw.split(',').map((part) => part.trim());
      for (const origin of list) {
        // An origin is scheme://host[:port], exactly as a browser sends it: no path, no trailing slash.
        if (!URL.canParse(origin) || new URL(origin).origin !== origin)
          bad("'same-origin', '*' or a comma-separated list of origins such as https://app.example.com");
      }
      return list;
    }
  }
}

/**
 * Reads the configuration: defaults, then `env`, then `argv` (flags only, no positionals).
 *
 * @param argv - CLI arguments, e.g. `process.argv.slice(2)`.
 * @param env - Environment variables, e.g. `process.env`.
 * @returns The validated configuration.
 * @throws {@link ConfigError} for an unknown flag or a bad value.
 */
export function loadConfig(argv: readonly string[] = [], env: NodeJS.ProcessEnv = {}): ServerConfig {
  const config: ServerConfig = { ...defaultConfig };
  const assign = (setting: Setting, raw: string, source: string): void => {
    (config as unknown as Record<string, unknown>)[setting.key] = parseValue(setting, raw, source);
  };
  for (const setting of settings) {
    const raw = env[setting.env];
    if (raw !== undefined) assign(setting, raw, setting.env);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const negated = flag.startsWith('--no-')
      ? settings.find((s) => s.kind === 'bool' && s.flag === `--${flag.slice(5)}`)
      : undefined;
    if (negated !== undefined && eq === -1) {
      config[negated.key as 'log' | 'debugEndpoints'] = false;
      continue;
    }
    const setting = settings.find((s) => s.flag === flag);
    if (setting === undefined) throw new ConfigError(`Unknown option ${JSON.stringify(arg)} (see --help)`);
    if (eq !== -1) {
      assign(setting, arg.slice(eq + 1), flag);
    } else if (setting.kind === 'bool' && (argv[i + 1] === undefined || argv[i + 1]?.startsWith('--') === true)) {
      assign(setting, 'true', flag);
    } else {
      const next = argv[++i];
      if (next === undefined) throw new ConfigError(`${flag} needs a value`);
      assign(setting, next, flag);
    }
  }
  if (config.headersTimeoutMs > config.httpRequestTimeoutMs) {
    throw new ConfigError(
      `HEADERS_TIMEOUT_MS (${config.headersTimeoutMs}) must not exceed HTTP_REQUEST_TIMEOUT_MS (${config.httpRequestTimeoutMs})`,
    );
  }
  // A job waits above the high-water mark, so each running job adds at most one event (≤ 64 KiB of payload) over it.
  const queueFloor = config.wsHighWaterBytes + config.wsMaxJobs * MAX_EVENT_BYTES;
  if (config.wsMaxQueueBytes < queueFloor) {
    throw new ConfigError(
      `WS_MAX_QUEUE_BYTES (${config.wsMaxQueueBytes}) must be at least ${queueFloor}: WS_HIGH_WATER_BYTES plus one ${MAX_EVENT_BYTES}-byte event per job of WS_MAX_JOBS`,
    );
  }
  if (config.requestTimeoutMs > config.maxRequestTimeoutMs) {
    throw new ConfigError(
      `REQUEST_TIMEOUT_MS (${config.requestTimeoutMs}) must not exceed MAX_REQUEST_TIMEOUT_MS (${config.maxRequestTimeoutMs})`,
    );
  }
  return config;
}

/** The `--help` text. */
export function helpText(): string {
  const lines = settings.map((s) => {
    const def = JSON.stringify(defaultConfig[s.key]);
    return `  ${`${s.flag} / ${s.env}`.padEnd(52)} ${s.help} (default ${def})`;
  });
  return [
    'Usage: loopsafe-reference-server [options]',
    '',
    'Options (CLI flag / environment variable):',
    ...lines,
    '',
  ].join('\n');
}
