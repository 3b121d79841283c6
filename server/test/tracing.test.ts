/**
 * `OTEL=1`: the built server, in a child process, prints its loopsafe spans
 * (one JSON line each, on stderr) through loopsafe/otel and the real
 * OpenTelemetry SDK; without it, nothing.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { getJson, until } from './helpers.js';

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));

interface SpanLine {
  span: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  attributes: Record<string, unknown>;
  events: { name: string }[];
}

/** Runs the server with `env`, makes the requests, stops it with SIGTERM; returns the span lines it printed. */
async function spansOf(env: Record<string, string>, paths: string[]): Promise<SpanLine[]> {
  if (!existsSync(main))
    throw new Error(`${main} is missing: run \`npm run build -w loopsafe-reference-server\` first`);
  const proc = spawn(process.execPath, [main, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env['PATH'] ?? '', ...env },
  });
  try {
    const logs: Record<string, unknown>[] = [];
    const spans: SpanLine[] = [];
    const exited = new Promise<number | string | null>((resolve) => {
      proc.on('exit', (code, signal) => {
        resolve(code ?? signal);
      });
    });
    createInterface({ input: proc.stdout }).on('line', (line) => {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    });
    createInterface({ input: proc.stderr }).on('line', (line) => {
      if (line.startsWith('{"span"')) spans.push(JSON.parse(line) as SpanLine);
    });
    await until(() => logs.some((l) => l['event'] === 'listening'), 5_000, 'the child server to listen');
    const url = String(logs.find((l) => l['event'] === 'listening')?.['url']);
    for (const path of paths) {
      const response = await getJson(`${url}${path}`, { 'x-request-timeout': '3000' });
      expect(response.status).toBe(200);
    }
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    return spans;
  } finally {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  }
}

describe('OTEL=1', () => {
  it("prints the request's spans: the request scope, the gather under it, a retry's attempts and wait", async () => {
    const spans = await spansOf({ OTEL: '1' }, ['/api/fanout?n=2', '/api/resilient?fault=fail&failures=1']);
    const byName = (name: string): SpanLine => {
      const found = spans.find((span) => span.span === name);
      expect(found, `a span named ${name} in ${spans.map((s) => s.span).join(', ')}`).toBeDefined();
      return found as SpanLine;
    };
    const request = byName('GET /api/fanout');
    const fanout = byName('fanout');
    expect(request.parentSpanId).toBeUndefined();
    expect(request.attributes).toMatchObject({ 'loopsafe.timeout_ms': 3000, 'loopsafe.outcome': 'ok' });
    expect(fanout.parentSpanId).toBe(request.spanId);
    expect(fanout.traceId).toBe(request.traceId);
    const retried = byName('flaky-upstream');
    expect(retried.events.map((event) => event.name)).toContain('loopsafe.retry');
    expect(byName('flaky-upstream attempt 1').parentSpanId).toBe(retried.spanId);
    expect(byName('flaky-upstream attempt 1').attributes['loopsafe.outcome']).toBe('error');
    expect(byName('flaky-upstream attempt 2').attributes['loopsafe.outcome']).toBe('ok');
  }, 20_000);

  it('without it, no span is printed', async () => {
    expect(await spansOf({}, ['/api/fanout?n=1'])).toEqual([]);
  }, 20_000);
});
