/**
 * `/api/fanout` under load with 5 % of upstream calls hanging: loopsafe mode
 * against naive mode (plain `Promise.all`, no deadline, no cancellation).
 *
 * Each mode runs in its own child process (`dist/main.js --mode …`), loaded by
 * autocannon in another child process for DURATION_S seconds on 127.0.0.1.
 * Everything is bounded: autocannon's duration and per-request timeout, and a
 * hard kill of both children.
 *
 * Run: `npm run bench -w loopsafe-reference-server` (after `npm run build` at the root).
 */
import { writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const DURATION_S = Number(process.env['DURATION_S'] ?? 10);
const CONNECTIONS = Number(process.env['CONNECTIONS'] ?? 50);
const REQUEST_TIMEOUT_MS = 500; // the budget each request sends in x-request-timeout
const CLIENT_TIMEOUT_S = 5; // autocannon gives up on a request after this
const PATH = '/api/fanout?n=5&fault=hang&faultRate=0.05';

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const autocannonBin = createRequire(import.meta.url).resolve('autocannon/autocannon.js');

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

async function runMode(mode: 'naive' | 'loopsafe'): Promise<Record<string, unknown>> {
  const server = spawn(process.execPath, [main, '--port', '0', '--mode', mode, '--no-log', '--shed-lag-ms', '1000'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { PATH: process.env['PATH'] ?? '' },
  });
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
    const cannon = spawn(
      process.execPath,
      [
        autocannonBin,
        '--json',
        '-c',
        String(CONNECTIONS),
        '-d',
        String(DURATION_S),
        '-t',
        String(CLIENT_TIMEOUT_S),
        '-H',
        `x-request-timeout=${REQUEST_TIMEOUT_MS}`,
        `${url}${PATH}`,
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let json = '';
    cannon.stdout.on('data', (chunk: Buffer) => {
      json += chunk.toString();
    });
    const killer = setTimeout(() => cannon.kill('SIGKILL'), (DURATION_S + CLIENT_TIMEOUT_S + 10) * 1_000);
    await once(cannon, 'exit');
    clearTimeout(killer);
    const result = JSON.parse(json) as AutocannonResult;
    const after = await health(url);
    return {
      mode,
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
for (const mode of ['naive', 'loopsafe'] as const) rows.push(await runMode(mode));
const setup = `GET ${PATH}, x-request-timeout ${REQUEST_TIMEOUT_MS} ms, ${CONNECTIONS} connections, ${DURATION_S} s, client timeout ${CLIENT_TIMEOUT_S} s, Node ${process.version}`;
console.log(setup);
console.table(rows);
// Kept with the other benchmark results (bench/results/ at the repository root).
const resultsFile = new URL('../../bench/results/load.json', import.meta.url);
await writeFile(
  resultsFile,
  `${JSON.stringify({ name: 'load', setup, date: new Date().toISOString(), rows }, null, 2)}\n`,
);
console.log(`wrote ${fileURLToPath(resultsFile)}`);
