/**
 * `/api/fanout` under load with 5 % of upstream calls hanging: loopsafe mode
 * against naive mode (plain `Promise.all`, no deadline, no cancellation).
 *
 * Each mode runs in its own child process (`dist/main.js --mode …`), loaded by
 * autocannon (in this process, which does nothing else) for DURATION_S seconds
 * on 127.0.0.1, at each of CONNECTIONS (a comma-separated list, default 50,200).
 * Everything is bounded: autocannon's duration and per-request timeout, and a
 * hard kill of the server child.
 *
 * Besides throughput and latency percentiles it records, per response, whether
 * it came within the request budget + 50 ms; the share is counted over the
 * answers after the first second (warm-up), a client timeout counting as late.
 *
 * Run: `npm run bench -w loopsafe-reference-server` (after `npm run build` at the root).
 * `MODES=loopsafe CONNECTIONS=50,200 DURATION_S=10` narrows it.
 */
import { writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const DURATION_S = Number(process.env['DURATION_S'] ?? 10);
const CONNECTIONS = (process.env['CONNECTIONS'] ?? '50,200').split(',').map(Number);
const MODES = (process.env['MODES'] ?? 'naive,loopsafe').split(',') as ('naive' | 'loopsafe')[];
const WARMUP_MS = 1_000;
/** The server's SHED_LAG_MS: 1000 by default, so that shedding stays out of the comparison. */
const SHED_LAG_MS = process.env['SHED_LAG_MS'] ?? '1000';
const ON_TIME_MS = 50; // an answer is on time within the budget + this
const REQUEST_TIMEOUT_MS = 500; // the budget each request sends in x-request-timeout
const CLIENT_TIMEOUT_S = 5; // autocannon gives up on a request after this
const PATH = '/api/fanout?n=5&fault=hang&faultRate=0.05';

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));
interface Cannon extends EventEmitter {
  stop(): void;
}
const autocannon = createRequire(import.meta.url)('autocannon') as (
  options: Record<string, unknown>,
  done: (error: Error | null, result: AutocannonResult) => void,
) => Cannon;

interface Health {
  memory: { rssMb: number };
  inFlight: { requests: number; scopes: number };
  upstream: { calls: number; cancelled: number; server?: { inFlight: number; aborted: number } };
}

async function health(url: string): Promise<Health> {
  const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5_000) });
  return (await res.json()) as Health;
}

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; average: number };
  '2xx': number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

async function runMode(mode: 'naive' | 'loopsafe', connections: number): Promise<Record<string, unknown>> {
  const server = spawn(
    process.execPath,
    [main, '--port', '0', '--mode', mode, '--no-log', '--shed-lag-ms', SHED_LAG_MS],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env['PATH'] ?? '' },
    },
  );
  try {
    let stderr = '';
    server.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const deadline = Date.now() + 5_000;
    while (!/listening on (\S+)/.test(stderr)) {
      if (Date.now() > deadline) throw new Error(`server did not start: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const url = /listening on (\S+)/.exec(stderr)?.[1] ?? '';
    const before = await health(url);
    let onTime = 0;
    let late = 0;
    let loadStarted = 0;
    const result = await new Promise<AutocannonResult>((resolve, reject) => {
      loadStarted = performance.now();
      const cannon = autocannon(
        {
          url: `${url}${PATH}`,
          connections,
          duration: DURATION_S,
          timeout: CLIENT_TIMEOUT_S,
          headers: { 'x-request-timeout': String(REQUEST_TIMEOUT_MS) },
        },
        (error, value) => {
          clearTimeout(killer);
          if (error === null) resolve(value);
          else reject(error);
        },
      );
      const killer = setTimeout(
        () => {
          cannon.stop();
        },
        (DURATION_S + CLIENT_TIMEOUT_S + 10) * 1_000,
      );
      const warm = (): boolean => performance.now() - loadStarted >= WARMUP_MS;
      cannon.on('response', (_client: unknown, _status: number, _bytes: number, responseTimeMs: number) => {
        if (!warm()) return;
        if (responseTimeMs <= REQUEST_TIMEOUT_MS + ON_TIME_MS) onTime++;
        else late++;
      });
      cannon.on('timeout', () => {
        if (warm()) late++;
      });
    });
    const after = await health(url);
    return {
      mode,
      connections,
      [`on time (≤ ${REQUEST_TIMEOUT_MS + ON_TIME_MS} ms, after ${WARMUP_MS / 1000} s)`]: `${((100 * onTime) / Math.max(1, onTime + late)).toFixed(2)} % (${late} late of ${onTime + late})`,
      'req/s': Math.round(result.requests.average),
      total: result.requests.total,
      '2xx': result['2xx'],
      non2xx: result.non2xx,
      'errors (timeouts)': `${result.errors} (${result.timeouts})`,
      'p50 ms': result.latency.p50,
      'p99 ms': result.latency.p99,
      'RSS MB before→after': `${before.memory.rssMb}→${after.memory.rssMb}`,
      'requests still open': after.inFlight.requests,
      'upstream calls hung open': after.upstream.server?.inFlight ?? 'n/a',
      'upstream calls cancelled': after.upstream.cancelled,
    };
  } finally {
    server.kill('SIGKILL');
  }
}

const rows = [];
for (const connections of CONNECTIONS) for (const mode of MODES) rows.push(await runMode(mode, connections));
const setup = `GET ${PATH}, x-request-timeout ${REQUEST_TIMEOUT_MS} ms, ${CONNECTIONS.join(' and ')} connections, ${DURATION_S} s each, client timeout ${CLIENT_TIMEOUT_S} s, SHED_LAG_MS ${SHED_LAG_MS}, Node ${process.version}`;
console.log(setup);
console.table(rows);
// Kept with the other benchmark results (bench/results/ at the repository root).
const resultsFile = new URL('../../bench/results/load.json', import.meta.url);
await writeFile(
  resultsFile,
  `${JSON.stringify({ name: 'load', setup, date: new Date().toISOString(), rows }, null, 2)}\n`,
);
console.log(`wrote ${fileURLToPath(resultsFile)}`);
