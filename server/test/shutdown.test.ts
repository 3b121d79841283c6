import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { connectWs, getJson, until } from './helpers.js';

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));
let child: ChildProcess | undefined;
/** Only what Node needs: the server's settings must come from the flags under test, not from the test runner's environment. */
const cleanEnv = { PATH: process.env['PATH'] ?? '' };

afterEach(() => {
  if (child?.exitCode === null) child.kill('SIGKILL');
  child = undefined;
});

interface Started {
  url: string;
  logs: Record<string, unknown>[];
  exited: Promise<number | string | null>;
}

/** Runs the built server in a child process on port 0 and waits for its `listening` log line. */
async function spawnServer(args: string[]): Promise<Started> {
  if (!existsSync(main))
    throw new Error(`${main} is missing: run \`npm run build -w loopsafe-reference-server\` first`);
  const proc = spawn(process.execPath, [main, '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: cleanEnv,
  });
  child = proc;
  const logs: Record<string, unknown>[] = [];
  const exited = new Promise<number | string | null>((resolve) => {
    proc.on('exit', (code, signal) => {
      resolve(code ?? signal);
    });
  });
  createInterface({ input: proc.stdout }).on('line', (line) => {
    logs.push(JSON.parse(line) as Record<string, unknown>);
  });
  await until(() => logs.some((l) => l['event'] === 'listening'), 5_000, 'the child server to listen');
  const url = logs.find((l) => l['event'] === 'listening')?.['url'];
  return { url: String(url), logs, exited };
}

describe('graceful shutdown (child process, SIGTERM)', () => {
  it('lets in-flight work finish within the drain, cancels the rest, closes WebSockets with 1001, exits 0', async () => {
    const { url, logs, exited } = await spawnServer(['--drain-ms', '800', '--upstream-slow-ms', '300']);
    const finishing = getJson(`${url}/api/fanout?n=2&fault=slow`, { 'x-request-timeout': '5000' });
    const stuck = getJson(`${url}/api/fanout?n=2&fault=hang`, { 'x-request-timeout': '20000' });
    const client = await connectWs(url);
    client.ws.send(JSON.stringify({ type: 'submit', id: 'long', steps: 100, stepMs: 100, deadlineMs: 20_000 }));
    await client.next((e) => e['type'] === 'agent_started');
    await until(() => logs.length > 0, 100);
    const health = await getJson(`${url}/health`);
    expect(health.body['inFlight']).toMatchObject({ requests: 2 });

    const signalledAt = performance.now();
    child?.kill('SIGTERM');
    await until(() => logs.some((l) => l['event'] === 'draining'), 2_000, 'draining');
    // No new connections once draining.
    await expect(fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) })).rejects.toThrow();

    const done = await finishing; // finished within the drain: answered in full
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ answered: 2, partial: false });

    const cancelled = await stuck; // still running at the drain deadline: cancelled with a clear answer
    expect(cancelled.status).toBe(503);
    expect(cancelled.body).toMatchObject({ error: 'shutting_down' });
    expect(performance.now() - signalledAt).toBeGreaterThanOrEqual(750);

    expect(await client.next((e) => e['type'] === 'agent_failed')).toMatchObject({ jobId: 'long', reason: 'shutdown' });
    expect((await client.closed).code).toBe(1001);

    expect(await exited).toBe(0);
    expect(performance.now() - signalledAt).toBeLessThan(800 + 2_000);
    expect(logs.find((l) => l['event'] === 'drained')).toMatchObject({
      drained: 1,
      cancelledRequests: 1,
      wsDrained: false,
    });
  });

  it('exits 0 at once on SIGINT when idle', async () => {
    const { exited } = await spawnServer(['--drain-ms', '5000']);
    const signalledAt = performance.now();
    child?.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(performance.now() - signalledAt).toBeLessThan(1_000);
  });

  it('refuses a bad configuration with exit code 2 and a clear message', async () => {
    const proc = spawn(process.execPath, [main, '--port', 'eighty'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: cleanEnv,
    });
    child = proc;
    let stderr = '';
    proc.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => {
      proc.on('exit', resolve);
    });
    expect(code).toBe(2);
    expect(stderr).toMatch(/--port must be a non-negative integer, got "eighty"/);
  });
});
