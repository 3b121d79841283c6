import { describe, expect, it } from 'vitest';
import { ConfigError, defaultConfig, helpText, loadConfig } from '../src/config.js';
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
  ] as [string[], Record<string, string>, RegExp][])('rejects %j %j with a clear ConfigError', (argv, env, message) => {
    expect(() => loadConfig(argv, env)).toThrow(ConfigError);
    expect(() => loadConfig(argv, env)).toThrow(message);
  });

  it('documents every flag and variable in --help', () => {
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
