import { describe, expect, it } from 'vitest';
import { ConfigError, defaultConfig, helpText, loadConfig, settings } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { planFaults } from '../src/validate.js';

describe('loadConfig', () => {
  it('uses the embedded defaults: 127.0.0.1:3000, in-process upstream, logs on', () => {
    expect(loadConfig()).toEqual(defaultConfig);
    expect(defaultConfig).toMatchObject({
      host: '127.0.0.1',
      port: 3000,
      upstreamUrl: '',
      log: true,
      mode: 'loopsafe',
    });
  });

  it('reads environment variables, and CLI flags over them', () => {
    const config = loadConfig(['--port', '8080', '--drain-ms=250', '--no-log'], {
      PORT: '9000',
      HOST: '0.0.0.0',
      DRAIN_MS: '5',
      LOG: 'on',
    });
    expect(config).toMatchObject({ port: 8080, host: '0.0.0.0', drainMs: 250, log: false });
    expect(loadConfig(['--debug-endpoints', '--mode', 'naive'])).toMatchObject({ debugEndpoints: true, mode: 'naive' });
    expect(loadConfig([], { UPSTREAM_URL: 'http://127.0.0.1:9999/' }).upstreamUrl).toBe('http://127.0.0.1:9999');
  });

  it.each([
    [['--port', '-1'], {}, /--port must be a non-negative integer, got "-1"/],
    [['--port', '70000'], {}, /--port must be an integer between 0 and 65535, got "70000"/],
    [[], { PORT: 'http' }, /PORT must be a non-negative integer, got "http"/],
    [['--log', 'maybe'], {}, /--log must be one of 1\/0/],
    [['--mode', 'fast'], {}, /--mode must be 'loopsafe' or 'naive', got "fast"/],
    [['--upstream-url', 'ftp://x'], {}, /--upstream-url must be an http\(s\) URL/],
    [['--prot', '1'], {}, /Unknown option "--prot"/],
    [['--port'], {}, /--port needs a value/],
    [['--request-timeout-ms', '5000', '--max-request-timeout-ms', '1000'], {}, /must not exceed/],
    [
      ['--headers-timeout-ms', '5000', '--http-request-timeout-ms', '1000'],
      {},
      /HEADERS_TIMEOUT_MS \(5000\) must not exceed/,
    ],
    [
      ['--allowed-origins', 'https://app.example.com/'],
      {},
      /--allowed-origins must be 'same-origin', '\*' or a comma-separated list/,
    ],
    [[], { ALLOWED_ORIGINS: 'app.example.com' }, /ALLOWED_ORIGINS must be/],
    [['--ws-max-queue-bytes', '100000'], {}, /WS_MAX_QUEUE_BYTES \(100000\) must be at least 1318912/],
    [['--max-body-bytes', '-1'], {}, /--max-body-bytes must be a non-negative integer/],
    [['--max-connections', '0'], {}, /--max-connections must be an integer between 1 and/],
  ] as [string[], Record<string, string>, RegExp][])('rejects %j %j with a clear ConfigError', (argv, env, message) => {
    expect(() => loadConfig(argv, env)).toThrow(ConfigError);
    expect(() => loadConfig(argv, env)).toThrow(message);
  });

  it('reads the limits of issue 17: origins, timeouts, body, connections, queue', () => {
    expect(
      loadConfig(['--allowed-origins', 'https://a.example, http://b.example:8080', '--max-connections=10'], {
        HEADERS_TIMEOUT_MS: '500',
        HTTP_REQUEST_TIMEOUT_MS: '900',
        MAX_BODY_BYTES: '0',
        WS_MAX_JOBS_TOTAL: '7',
      }),
    ).toMatchObject({
      allowedOrigins: ['https://a.example', 'http://b.example:8080'],
      maxConnections: 10,
      headersTimeoutMs: 500,
      httpRequestTimeoutMs: 900,
      maxBodyBytes: 0,
      wsMaxJobsTotal: 7,
    });
    expect(loadConfig([], { ALLOWED_ORIGINS: '*' }).allowedOrigins).toBe('*');
    expect(defaultConfig.allowedOrigins).toBe('same-origin');
  });

  it('documents every flag and variable in --help', () => {
    for (const s of settings) {
      expect(helpText()).toContain(`${s.flag} / ${s.env}`);
    }
    expect(helpText()).toMatch(/--port \/ PORT/);
    expect(helpText()).toMatch(/--no-log|LOG=0/);
  });
});

describe('createLogger', () => {
  it('writes one JSON object per line, and nothing when disabled', () => {
    const lines: string[] = [];
    createLogger(true, (line) => lines.push(line)).info('request', { status: 200, error: new Error('boom') });
    createLogger(false, (line) => lines.push(line)).info('request');
    expect(lines).toHaveLength(1);
    expect(lines[0]?.endsWith('\n')).toBe(true);
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({
      level: 'info',
      event: 'request',
      status: 200,
      error: { name: 'Error', message: 'boom' },
    });
  });
});

describe('planFaults', () => {
  it('applies a fault to a share of the calls, or a list call by call', () => {
    const values = [0.01, 0.5, 0.04, 0.9];
    let i = 0;
    expect(planFaults(4, 'hang', 0.05, () => values[i++] ?? 1)).toEqual(['hang', 'none', 'hang', 'none']);
    expect(planFaults(2, undefined, 1)).toEqual(['none', 'none']);
    expect(planFaults(2, ['slow', 'none'], 1)).toEqual(['slow', 'none']);
  });
});
