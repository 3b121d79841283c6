/**
 * Structured logs: one JSON object per line, `{ time, level, event, ...fields }`.
 * A disabled logger costs one branch per call.
 */

export type LogLevel = 'info' | 'warn' | 'error';

export interface Logger {
  readonly enabled: boolean;
  log(level: LogLevel, event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

/** Writes a line; `process.stdout` by default. */
export type LineSink = (line: string) => void;

/**
 * Creates a logger.
 *
 * @param enabled - `false` for a logger that writes nothing.
 * @param sink - Where each line goes.
 * @returns The logger.
 */
export function createLogger(enabled: boolean, sink: LineSink = (line) => process.stdout.write(line)): Logger {
  const log = (level: LogLevel, event: string, fields?: Record<string, unknown>): void => {
    if (!enabled) return;
    // Every line is redacted as a whole: a URL with credentials can hide in any field, an error message included.
    sink(
      `${redactSecrets(JSON.stringify({ time: new Date().toISOString(), level, event, ...fields }, errorReplacer))}\n`,
    );
  };
  return {
    enabled,
    log,
    info: (event, fields) => {
      log('info', event, fields);
    },
    warn: (event, fields) => {
      log('warn', event, fields);
    },
    error: (event, fields) => {
      log('error', event, fields);
    },
  };
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}

/** A logger that writes nothing. */
export const silentLogger: Logger = createLogger(false);

const USERINFO = /\b([a-z][\w+.-]*:\/\/)[^\s/?#"]*@/gi;

/**
 * Replaces the credentials of every URL in `text` (`scheme://user:password@host`) with `***`.
 *
 * @param text - Any text: a URL, an error message, a log line.
 * @returns The text with `scheme://***@host` for every URL that had a user or password.
 */
export function redactSecrets(text: string): string {
  return text.replace(USERINFO, '$1***@');
}
