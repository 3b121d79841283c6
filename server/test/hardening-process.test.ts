/**
 * Issue 17, the findings that need the built server in a child process: out of memory from
 * outside (a 128 MB heap against 20 never-reading clients), and credentials in the startup log.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { startUpstream } from '../src/upstream.js';
import { connectWs, getJson, until, type WsClient } from './helpers.js';

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));
let child: ChildProcess | undefined;

afterEach(() => {
  if (child?.exitCode === null) child.kill('SIGKILL');
  child = undefined;
});

async function spawnServer(
  nodeArgs: string[],
  args: string[],
  env: Record<string, string> = {},
): Promise<{ url: string; lines: string[]; exited: Promise<number | string | null> }> {
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build -w loopsafe-reference-server\``);
  const proc = spawn(process.execPath, [...nodeArgs, main, '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env['PATH'] ?? '', ...env },
  });
  child = proc;
  const lines: string[] = [];
  const exited = new Promise<number | string | null>((resolve) => {
    proc.on('exit', (code, signal) => {
      resolve(code ?? signal);
    });
  });
  createInterface({ input: proc.stdout }).on('line', (line) => lines.push(line));
  createInterface({ input: proc.stderr }).on('line', (line) => lines.push(line));
  await until(() => lines.some((l) => l.includes('"listening"')), 5_000, 'the child server to listen');
  const listening = JSON.parse(lines.find((l) => l.includes('"listening"')) ?? '{}') as { url: string };
  return { url: listening.url, lines, exited };
}

describe('out of memory from outside (finding 1)', () => {
  it('stays up with a 128 MB heap against 20 clients that submit and never read; /health answers within 100 ms', async () => {
    const { url, exited } = await spawnServer(['--max-old-space-size=128'], []);
    let crashed: number | string | null | undefined;
    void exited.then((code) => (crashed = code));
    const clients: WsClient[] = [];
    for (let i = 0; i < 20; i++) clients.push(await connectWs(url));
    for (const client of clients) {
      // Hold the per-connection job slots, then stop reading: every further submit is a reply never read.
      for (let j = 0; j < 4; j++)
        client.ws.send(JSON.stringify({ type: 'submit', id: `hold-${j}`, steps: 1_000, stepMs: 1_000 }));
      client.ws.pause();
    }
    const healthMs: number[] = [];
    const floodUntil = performance.now() + 8_000;
    let sent = 0;
    // Bounded: 8 s, and each client stops once the server has closed it.
    while (performance.now() < floodUntil && clients.some((c) => c.ws.readyState === c.ws.OPEN)) {
      for (const client of clients) {
        if (client.ws.readyState !== client.ws.OPEN || client.ws.bufferedAmount > 512 * 1024) continue;
        for (let k = 0; k < 200; k++)
          client.ws.send(JSON.stringify({ type: 'submit', id: `f-${sent++}-${'x'.repeat(40)}` }));
      }
      await new Promise((resolve) => setImmediate(resolve));
      if (sent % 20_000 < 4_000) {
        // Always answered; 503 (shedding) is a right answer while the flood lags the loop.
        const { status, ms } = await getJson(`${url}/health`, {}, 2_000);
        expect([200, 503]).toContain(status);
        healthMs.push(ms);
      }
    }
    expect(crashed).toBeUndefined();
    // The flood is over once the server has dropped every abuser (it closes each a second after its
    // queue overflowed); from then on it must answer promptly. Bounded: 3 s.
    const droppedBy = performance.now() + 3_000;
    for (;;) {
      const probe = await getJson(`${url}/health`, {}, 2_000);
      if ((probe.body['websockets'] as { connections: number }).connections === 0) break;
      if (performance.now() > droppedBy) throw new Error('the server did not drop the 20 never-reading clients');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const { status, body, ms } = await getJson(`${url}/health`, {}, 2_000);
    expect([200, 503]).toContain(status);
    expect(ms).toBeLessThan(100);
    const websockets = body['websockets'] as { queueOverflows: number; connections: number; jobsRejected: number };
    // Replies the server made and nobody read: at ~760 B of heap each, unbounded, 170 000 fill 128 MB.
    expect(websockets.jobsRejected).toBeGreaterThan(170_000);
    const memory = body['memory'] as { heapUsedMb: number };
    expect(websockets.queueOverflows).toBe(20);
    expect(memory.heapUsedMb).toBeLessThan(100);
    console.log(
      `flood: ${sent} submits sent, ${websockets.jobsRejected} rejected; /health during it: max ${Math.round(Math.max(...healthMs))} ms over ${healthMs.length}; heap ${memory.heapUsedMb} MB`,
    );
    for (const client of clients) client.ws.terminate();
  }, 30_000);
});

describe('credentials published (finding 2)', () => {
  it('keeps the password of UPSTREAM_URL out of the startup log and /health', async () => {
    const upstream = await startUpstream({ latencyMs: 0, slowMs: 0 });
    try {
      const withCreds = upstream.url.replace('http://', 'http://operator:s3cr3t-pw@');
      const { url, lines } = await spawnServer([], [], { UPSTREAM_URL: withCreds });
      expect((await getJson(`${url}/api/fanout?n=1`)).body).toMatchObject({ answered: 1 });
      const health = await getJson(`${url}/health`);
      expect(JSON.stringify(health.body)).not.toMatch(/s3cr3t/);
      expect(lines.find((l) => l.includes('"listening"'))).toContain('http://***@127.0.0.1');
      expect(lines.join('\n')).not.toMatch(/s3cr3t/);
    } finally {
      await upstream.close();
    }
  });

  it('keeps it out of a configuration error too', async () => {
    const proc = spawn(process.execPath, [main, '--upstream-url', 'ftp://operator:s3cr3t-pw@host'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env['PATH'] ?? '' },
    });
    child = proc;
    let stderr = '';
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
    expect(code).toBe(2);
    expect(stderr).toMatch(/--upstream-url must be an http\(s\) URL, got "ftp:\/\/\*\*\*@host"/);
  });
});
