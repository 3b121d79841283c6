/**
 * What loopsafe/http costs a real request:
 *
 * - `scopedFetch` against a local upstream (node:http, keep-alive, 127.0.0.1),
 *   inside a request scope that is already open, vs plain `fetch` with
 *   `AbortSignal.timeout` — the plainest way to bound a call — in the same run,
 *   interleaved round by round. A row that also sends the budget by hand
 *   (`x-request-timeout`, what scopedFetch does) is shown beside it.
 * - A Fastify route with the loopsafe plugin vs the same route without it,
 *   each in its own server process, under autocannon (50 connections, every
 *   request carrying `x-request-timeout`), alternating plugin and bare so
 *   drift in machine load hits both alike. The target is on time per request
 *   (bare requests/s ÷ plugin requests/s): ≥ 0.95× the requests per second
 *   is ≤ 1.053× the time.
 *
 * Run: npx tsx bench/http.bench.ts   (--quick for a smoke run, --json for machine-readable output)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { withTimeout } from '../src/index.js';
import { scopedFetch } from '../src/http.js';
import loopsafeFastify from '../src/fastify.js';
import { compileBench, emit, flags, ratioTarget, round, timeCandidates, type Target } from './lib/harness.js';
import { targets } from './lib/targets.js';

const CALLS = flags.calls ?? (flags.quick ? 200 : 2_000);
const ROUNDS = flags.rounds ?? (flags.quick ? 1 : 5);
/** Seconds of autocannon per server per round, and the rounds (plugin and bare alternate). */
const LOAD_SECONDS = flags.quick ? 1 : 10;
const LOAD_ROUNDS = flags.quick ? 1 : 2;
const CONNECTIONS = 50;

const PLAIN = 'fetch + AbortSignal.timeout';
const BY_HAND = 'fetch + AbortSignal.timeout + x-request-timeout by hand';
const SCOPED = 'loopsafe scopedFetch (in a request scope)';
const SCOPED_OWN = 'loopsafe withTimeout + scopedFetch (a scope per call)';

// ---------------------------------------------------------------------------
// The server child: `--serve plugin|bare` starts a Fastify app, prints its port, serves until killed.

async function serve(kind: 'plugin' | 'bare'): Promise<void> {
  const app = Fastify();
  if (kind === 'plugin') await app.register(loopsafeFastify, { defaultTimeoutMs: 5_000, maxTimeoutMs: 30_000 });
  let served = 0;
  app.get('/', () => {
    served++;
    return { hello: 'world' };
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  console.log(JSON.stringify({ port: (app.server.address() as AddressInfo).port }));
  // `--count`: from now on, count the requests and the CPU time they cost (after the warm-up).
  let since = { cpu: process.cpuUsage(), served: 0 };
  process.on('SIGUSR2', () => {
    since = { cpu: process.cpuUsage(), served };
  });
  process.once('SIGTERM', () => {
    const cpu = process.cpuUsage(since.cpu);
    console.log(JSON.stringify({ served: served - since.served, cpuUs: cpu.user + cpu.system }));
    void app.close().then(() => process.exit(0));
  });
}

/** Starts a server child and resolves with its URL once it listens. */
interface Child {
  url: string;
  child: ChildProcess;
  /** Everything the child printed. */
  output: () => string;
}

async function startChild(kind: 'plugin' | 'bare'): Promise<Child> {
  const self = fileURLToPath(import.meta.url);
  const script = self.endsWith('.ts') ? await compileBench(self) : self;
  const child = spawn(process.execPath, ['--no-warnings', script, '--serve', kind], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line !== undefined) resolve((JSON.parse(line) as { port: number }).port);
    });
    child.once('exit', (code) => {
      reject(new Error(`the ${kind} server exited (${String(code)}) before it listened`));
    });
  });
  return { url: `http://127.0.0.1:${port}/`, child, output: () => out };
}

/** Stops a server child; returns the requests it served and the CPU time they took, since `SIGUSR2`. */
async function stopChild({ child, output }: Child): Promise<{ served: number; cpuUs: number }> {
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      resolve();
    });
  });
  child.kill('SIGTERM');
  await exited;
  const last = output().trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as { served: number; cpuUs: number };
}

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p99: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}

const autocannonBin = createRequire(import.meta.url).resolve('autocannon/autocannon.js');

/** autocannon in a process of its own (the load must not share a core with the bench's bookkeeping). */
async function load(url: string, seconds: number): Promise<AutocannonResult> {
  const cannon = spawn(
    process.execPath,
    [
      autocannonBin,
      '--json',
      '-c',
      String(CONNECTIONS),
      '-d',
      String(seconds),
      '-t',
      '5',
      '-H',
      'x-request-timeout=5000',
      url,
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  let json = '';
  cannon.stdout.on('data', (chunk: Buffer) => {
    json += chunk.toString();
  });
  const killer = setTimeout(() => cannon.kill('SIGKILL'), (seconds + 15) * 1_000);
  const [code] = (await once(cannon, 'exit')) as [number | null];
  clearTimeout(killer);
  if (code !== 0) throw new Error(`autocannon exited ${String(code)}`);
  return JSON.parse(json) as AutocannonResult;
}

// ---------------------------------------------------------------------------
// The bench.

async function fetchTable(): Promise<Record<string, unknown>[]> {
  const upstream: Server = createServer((_req, res) => {
    res.end('ok');
  });
  upstream.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`;
  const read = (response: Response): Promise<string> => response.text();
  // The request scope a handler runs in, open for the whole table (one per request in a service).
  let rows: Record<string, unknown>[] = [];
  await withTimeout(
    10 * 60_000,
    async () => {
      rows = (await timeCandidates(
        {
          [PLAIN]: () => fetch(url, { signal: AbortSignal.timeout(5_000) }).then(read),
          [BY_HAND]: () =>
            fetch(url, { signal: AbortSignal.timeout(5_000), headers: { 'x-request-timeout': '5000' } }).then(read),
          [SCOPED]: () => scopedFetch(url).then(read),
        },
        PLAIN,
        CALLS,
        ROUNDS,
      )) as unknown as Record<string, unknown>[];
    },
    { name: 'bench request' },
  );
  const own = await timeCandidates(
    {
      [PLAIN]: () => fetch(url, { signal: AbortSignal.timeout(5_000) }).then(read),
      [SCOPED_OWN]: () => withTimeout(5_000, () => scopedFetch(url).then(read)),
    },
    PLAIN,
    CALLS,
    ROUNDS,
  );
  upstream.closeAllConnections();
  upstream.close();
  return [...rows, ...(own.filter((row) => row.name !== PLAIN) as unknown as Record<string, unknown>[])];
}

async function fastifyTable(): Promise<{ rows: Record<string, unknown>[]; failures: string[] }> {
  const samples: Record<'plugin' | 'bare', AutocannonResult[]> = { plugin: [], bare: [] };
  const cpu: Record<'plugin' | 'bare', number[]> = { plugin: [], bare: [] };
  const failures: string[] = [];
  for (let r = 0; r < LOAD_ROUNDS; r++) {
    // Alternate which goes first, so neither always runs on the warmer machine.
    const order: ('plugin' | 'bare')[] = r % 2 === 0 ? ['bare', 'plugin'] : ['plugin', 'bare'];
    for (const kind of order) {
      const server = await startChild(kind);
      let counted: { served: number; cpuUs: number } | undefined;
      try {
        await load(server.url, flags.quick ? 0.5 : 2); // warm-up: a short pass, not counted
        server.child.kill('SIGUSR2'); // the server counts from here
        const result = await load(server.url, LOAD_SECONDS);
        samples[kind].push(result);
        if (result.errors + result.timeouts + result.non2xx > 0)
          failures.push(`${kind}: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx`);
      } finally {
        counted = await stopChild(server);
      }
      cpu[kind].push(counted.cpuUs / counted.served);
    }
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;
  const row = (kind: 'plugin' | 'bare', name: string): Record<string, unknown> => {
    const rps = median(samples[kind].map((s) => s.requests.average));
    return {
      name,
      requestsPerSecond: round(rps, 0),
      usPerRequest: round(1e6 / rps, 2),
      serverCpuUsPerRequest: round(median(cpu[kind]), 2),
      p99Ms: median(samples[kind].map((s) => s.latency.p99)),
    };
  };
  return { rows: [row('bare', 'Fastify route, bare'), row('plugin', 'Fastify route + loopsafe plugin')], failures };
}

async function main(): Promise<void> {
  const fetchRows = await fetchTable();
  const fastify = await fastifyTable();
  const tables = { fetch: fetchRows, fastify: fastify.rows };
  const measured: Target[] = [
    ratioTarget(targets.httpScopedFetch, tables, 'fetch', SCOPED, PLAIN),
    ratioTarget(
      targets.httpFastify,
      tables,
      'fastify',
      'Fastify route + loopsafe plugin',
      'Fastify route, bare',
      'usPerRequest',
    ),
  ];
  emit(
    {
      bench: 'http',
      node: process.version,
      quick: flags.quick,
      params: {
        calls: CALLS,
        rounds: ROUNDS,
        loadSeconds: LOAD_SECONDS,
        loadRounds: LOAD_ROUNDS,
        connections: CONNECTIONS,
      },
      tables,
      targets: measured,
      failures: fastify.failures,
      notes: [
        'fetch: one upstream on 127.0.0.1 (node:http, keep-alive) in the bench process; every call reads the body',
        `fastify: each server in its own process, autocannon in the bench process (${CONNECTIONS} connections, ${LOAD_SECONDS} s per server per round, after a warm-up pass), plugin and bare alternating; medians of the rounds`,
      ],
    },
    {
      fetch: 'One fetch to a local upstream (µs per call; ratio to fetch + AbortSignal.timeout)',
      fastify: 'One Fastify route under autocannon (requests/s; µs per request = 1 / requests/s)',
    },
  );
}

const at = process.argv.indexOf('--serve');
if (at !== -1) await serve(process.argv[at + 1] === 'plugin' ? 'plugin' : 'bare');
else await main();
