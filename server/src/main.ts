#!/usr/bin/env node
/**
 * Entry point: `node dist/main.js [--port 3000] [--host 127.0.0.1] …` (see --help).
 * Starts the reference server; SIGTERM/SIGINT drain it and exit 0.
 */
import { ConfigError, helpText, loadConfig } from './config.js';
import { createLogger, redactSecrets } from './log.js';
import { startServer } from './server.js';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText());
    return;
  }
  const config = loadConfig(argv, process.env);
  const logger = createLogger(config.log);
  // OTEL=1: loopsafe's scopes as OpenTelemetry spans, printed to stdout (see tracing.ts).
  const tracing = process.env.OTEL === '1' ? (await import('./tracing.js')).startTracing() : undefined;
  const running = await startServer(config, { logger });
  const stop = (signal: NodeJS.Signals): void => {
    logger.info('shutdown', { signal, drainMs: config.drainMs });
    process.once(signal, () => {
      logger.warn('forced_exit', { signal });
      process.exit(1);
    });
    running
      .shutdown()
      .then(() => tracing?.stop())
      .then(
        () => {
          logger.info('stopped');
          process.exit(0);
        },
        (e: unknown) => {
          logger.error('shutdown_failed', { error: e });
          process.exit(1);
        },
      );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // Announce only once the signal handlers are in place: a supervisor may signal as soon as it reads this.
  logger.info('listening', {
    url: running.url,
    port: running.port,
    mode: config.mode,
    upstream: redactSecrets(running.ctx.upstreamUrl),
    inProcessUpstream: running.ctx.upstream !== undefined,
  });
  if (!config.log) process.stderr.write(`loopsafe reference server listening on ${running.url}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(
    `${redactSecrets(e instanceof ConfigError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e))}\n`,
  );
  process.exit(e instanceof ConfigError ? 2 : 1);
});
