/**
 * Deadlines in HTTP headers: reading a request's budget ({@link requestDeadline})
 * and writing the remaining one downstream ({@link deadlineHeaders}), in the
 * three formats services send: `x-request-timeout` (integer milliseconds),
 * `grpc-timeout` (the gRPC over HTTP/2 `TimeoutValue TimeoutUnit`) and
 * `x-envoy-expected-rq-timeout-ms` (integer milliseconds).
 *
 * @module
 */
import { currentScope, type Scope } from '../index.js';
import { assertDuration, assertOptions, describe } from '../internal/validate.js';

/**
 * A header that carries a deadline budget.
 *
 * @category HTTP
 */
export type DeadlineHeader = 'x-request-timeout' | 'grpc-timeout' | 'x-envoy-expected-rq-timeout-ms';

/** Every header {@link requestDeadline} reads by default, in this order. */
const DEADLINE_HEADERS: readonly DeadlineHeader[] = /* @__PURE__ */ Object.freeze([
  'x-request-timeout',
  'grpc-timeout',
  'x-envoy-expected-rq-timeout-ms',
]);

/**
 * The headers of a request, in any of the shapes a server hands them over:
 * Node's `IncomingHttpHeaders`, a WHATWG `Headers`, or a plain record.
 *
 * @category HTTP
 */
export type HeaderSource = Headers | Readonly<Record<string, string | readonly string[] | undefined>>;

/**
 * A deadline header's value is malformed: the request is answered 400.
 *
 * @category HTTP
 * @example
 * ```ts
 * import { DeadlineHeaderError, requestDeadline } from 'loopsafe/http';
 *
 * try {
 *   requestDeadline({ 'grpc-timeout': '5 seconds' });
 * } catch (error) {
 *   if (error instanceof DeadlineHeaderError) console.log(error.status, error.header); // 400 'grpc-timeout'
 * }
 * ```
 */
export class DeadlineHeaderError extends Error {
  /** Always `'DeadlineHeaderError'`. */
  override readonly name = 'DeadlineHeaderError' as const;
  /** The HTTP status a server answers with: always 400. */
  readonly status = 400 as const;
  /** The header whose value is malformed (lower case). */
  readonly header: DeadlineHeader;
  /** The value received, as it came (an array when the header was sent more than once). */
  readonly value: string | readonly string[];

  /**
   * @param header - The header whose value is malformed.
   * @param value - The value received.
   * @param expected - What the header must hold, for the message.
   */
  constructor(header: DeadlineHeader, value: string | readonly string[], expected: string) {
    super(`The ${header} header must be ${expected}, got ${describeValue(value)}`);
    this.header = header;
    this.value = value;
  }
}

function describeValue(value: string | readonly string[]): string {
  return typeof value === 'string' ? JSON.stringify(value) : `${value.length} values (${JSON.stringify(value)})`;
}

/** Milliseconds per gRPC `TimeoutUnit`. */
const GRPC_UNITS: Readonly<Record<string, number>> = /* @__PURE__ */ Object.freeze({
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
});

/** `TimeoutValue` is 1–8 ASCII digits, then exactly one unit (gRPC over HTTP/2). */
const GRPC_TIMEOUT = /^(\d{1,8})([HMSmun])$/;
/** Whole milliseconds: ASCII digits, at most 15 (every such number is an exact integer). */
const INTEGER_MS = /^\d{1,15}$/;

const EXPECTED: Readonly<Record<DeadlineHeader, string>> = /* @__PURE__ */ Object.freeze({
  'x-request-timeout': 'a whole number of milliseconds (1 to 15 digits)',
  'grpc-timeout': '1 to 8 digits followed by one of the units H, M, S, m, u, n (for example "250m")',
  'x-envoy-expected-rq-timeout-ms': 'a whole number of milliseconds (1 to 15 digits)',
});

/** One header's budget in milliseconds, or a `DeadlineHeaderError`. */
function parseHeader(header: DeadlineHeader, raw: string | readonly string[]): number {
  // Sent twice, a header reaches Node as "a, b" and a `Headers` as "a, b": malformed either way.
  if (typeof raw !== 'string') {
    if (raw.length !== 1) throw new DeadlineHeaderError(header, raw, `${EXPECTED[header]}, sent once`);
    return parseHeader(header, raw[0] as string);
  }
  // HTTP field values carry no leading or trailing whitespace (RFC 9110 §5.5); a record may.
  const text = raw.trim();
  if (header === 'grpc-timeout') {
    const match = GRPC_TIMEOUT.exec(text);
    if (match === null) throw new DeadlineHeaderError(header, raw, EXPECTED[header]);
    return Number(match[1]) * (GRPC_UNITS[match[2] as string] as number);
  }
  if (!INTEGER_MS.test(text)) throw new DeadlineHeaderError(header, raw, EXPECTED[header]);
  return Number(text);
}

/** Reads one header from any {@link HeaderSource}; names are matched case-insensitively. */
function readHeader(source: HeaderSource, name: string, lowerCase: boolean): string | readonly string[] | undefined {
  if (source instanceof Headers) return source.get(name) ?? undefined;
  const direct = source[name];
  if (direct !== undefined || lowerCase) return direct;
  // Node's IncomingHttpHeaders are lower case already; a hand-made record may not be.
  for (const key in source) {
    if (key.length === name.length && key.toLowerCase() === name) return source[key];
  }
  return undefined;
}

function assertHeaderSource(value: unknown): asserts value is HeaderSource {
  if (value instanceof Headers) return;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(
      `Expected \`headers\` to be a Headers object or a record of header values (req.headers), got ${describe(value)}`,
    );
  }
}

function assertHeaderName(name: string, value: unknown): asserts value is DeadlineHeader {
  if (typeof value !== 'string' || !(DEADLINE_HEADERS as readonly string[]).includes(value)) {
    throw new RangeError(`Expected \`${name}\` to be one of ${DEADLINE_HEADERS.join(', ')}, got ${describe(value)}`);
  }
}

/**
 * Options for {@link requestDeadline}.
 *
 * @category HTTP
 */
export interface RequestDeadlineOptions {
  /**
   * The headers to read; the smallest budget among those present wins.
   * @defaultValue `['x-request-timeout', 'grpc-timeout', 'x-envoy-expected-rq-timeout-ms']`
   */
  headers?: readonly DeadlineHeader[] | undefined;
  /**
   * The largest budget a caller may ask for, in milliseconds: a larger one is clamped to it.
   * @defaultValue `Infinity`
   */
  maxMs?: number | undefined;
}

const REQUEST_DEADLINE_OPTIONS = /* @__PURE__ */ new Set(['headers', 'maxMs']);

/** Validates `requestDeadline`'s options once; the result is what a hot path reads. */
export function readDeadlineOptions(
  fn: string,
  options: RequestDeadlineOptions | undefined,
): { headers: readonly DeadlineHeader[]; maxMs: number } {
  assertOptions(fn, options, REQUEST_DEADLINE_OPTIONS);
  const headers = options?.headers ?? DEADLINE_HEADERS;
  if (!Array.isArray(headers) || headers.length === 0) {
    throw new TypeError(`Expected \`headers\` to be a non-empty array of header names, got ${describe(headers)}`);
  }
  headers.forEach((name, i) => {
    assertHeaderName(`headers[${i}]`, name);
  });
  const maxMs = options?.maxMs ?? Number.POSITIVE_INFINITY;
  assertDuration('maxMs', maxMs);
  return { headers, maxMs };
}

/**
 * {@link requestDeadline} with options already validated. `lowerCase`: the
 * names in `source` are lower case already (Node's `req.headers`), so a name
 * not found directly is absent.
 */
export function deadlineFrom(
  source: HeaderSource,
  headers: readonly DeadlineHeader[],
  maxMs: number,
  lowerCase = false,
): number | undefined {
  let budget: number | undefined;
  for (const header of headers) {
    const raw = readHeader(source, header, lowerCase);
    if (raw === undefined) continue;
    const ms = parseHeader(header, raw);
    if (budget === undefined || ms < budget) budget = ms;
  }
  return budget === undefined ? undefined : Math.min(budget, maxMs);
}

/**
 * A request's deadline budget, read from its headers: the smallest of
 * `x-request-timeout` (whole milliseconds), `grpc-timeout` (1–8 digits and a
 * unit, exactly as the gRPC over HTTP/2 spec writes it: `H`ours, `M`inutes,
 * `S`econds, `m`illiseconds, `u` microseconds, `n`anoseconds) and
 * `x-envoy-expected-rq-timeout-ms` (whole milliseconds) among those present,
 * clamped to `maxMs`.
 *
 * @param headers - The request's headers: Node's `req.headers`, a `Headers`, or a plain record.
 * @param options - `headers` (which to read), `maxMs` (the clamp).
 * @returns The budget in milliseconds (`0` means it is spent already), or `undefined` when no deadline header is present.
 * @throws {@link DeadlineHeaderError} (status 400) when a header present is malformed or sent twice.
 * @throws `TypeError`/`RangeError` for bad arguments.
 * @category HTTP
 * @example
 * ```ts
 * import { requestDeadline } from 'loopsafe/http';
 *
 * console.log(requestDeadline({ 'x-request-timeout': '2500' })); // 2500
 * console.log(requestDeadline(new Headers({ 'grpc-timeout': '3S', 'x-request-timeout': '5000' }))); // 3000
 * console.log(requestDeadline({ 'grpc-timeout': '1H' }, { maxMs: 30_000 })); // 30000
 * console.log(requestDeadline({})); // undefined
 * ```
 */
export function requestDeadline(headers: HeaderSource, options?: RequestDeadlineOptions): number | undefined {
  assertHeaderSource(headers);
  const opts = readDeadlineOptions('requestDeadline', options);
  return deadlineFrom(headers, opts.headers, opts.maxMs);
}

/**
 * Options for {@link deadlineHeaders}.
 *
 * @category HTTP
 */
export interface DeadlineHeadersOptions {
  /**
   * The scope whose remaining budget to send.
   * @defaultValue the ambient scope ({@link currentScope})
   */
  scope?: Scope | undefined;
  /**
   * The header to write the budget in.
   * @defaultValue `'x-request-timeout'`
   */
  header?: DeadlineHeader | undefined;
  /**
   * Milliseconds kept back for this service's own work after the downstream call
   * answers (writing the response, a fallback): subtracted from what is sent.
   * @defaultValue `0`
   */
  reserveMs?: number | undefined;
}

const DEADLINE_HEADERS_OPTIONS = /* @__PURE__ */ new Set(['scope', 'header', 'reserveMs']);

/** The largest value `grpc-timeout` can hold: 8 digits. */
const GRPC_MAX_VALUE = 99_999_999;

/** `ms` in the finest gRPC unit whose value fits in 8 digits, rounded down. */
export function formatGrpcTimeout(ms: number): string {
  for (const unit of ['n', 'u', 'm', 'S', 'M'] as const) {
    const value = Math.floor(ms / (GRPC_UNITS[unit] as number));
    if (value <= GRPC_MAX_VALUE) return `${value}${unit}`;
  }
  return `${Math.min(GRPC_MAX_VALUE, Math.floor(ms / 3_600_000))}H`;
}

/** A budget in milliseconds, written in `header`'s format (never more than the budget). */
export function formatBudget(header: DeadlineHeader, ms: number): string {
  return header === 'grpc-timeout' ? formatGrpcTimeout(ms) : String(Math.floor(ms));
}

/**
 * The headers that carry a scope's remaining budget to a downstream service:
 * the remaining time of `scope` (the ambient one by default) minus
 * `reserveMs`, floored at 0, in `header`'s format. `grpc-timeout` is written
 * in the finest unit that fits its 8 digits; the integer formats are rounded
 * down, so a downstream service is never promised more than is left.
 *
 * @param options - `scope`, `header`, `reserveMs`.
 * @returns A record to spread into a request's headers: `{}` when there is no scope or it has no finite deadline.
 * @throws `TypeError`/`RangeError` for bad options.
 * @category HTTP
 * @example
 * ```ts
 * import { withTimeout } from 'loopsafe';
 * import { deadlineHeaders } from 'loopsafe/http';
 * import { createManualClock } from 'loopsafe/testing';
 *
 * const clock = createManualClock(); // time stands still, so the output is exact
 * await withTimeout(
 *   2_000,
 *   () => {
 *     console.log(deadlineHeaders()); // { 'x-request-timeout': '2000' }
 *     console.log(deadlineHeaders({ header: 'grpc-timeout', reserveMs: 500 })); // { 'grpc-timeout': '1500000u' }
 *   },
 *   { clock },
 * );
 * console.log(deadlineHeaders()); // {}: no scope, no deadline
 * ```
 */
export function deadlineHeaders(options?: DeadlineHeadersOptions): Record<string, string> {
  assertOptions('deadlineHeaders', options, DEADLINE_HEADERS_OPTIONS);
  const header = options?.header ?? 'x-request-timeout';
  assertHeaderName('header', header);
  const reserveMs = options?.reserveMs ?? 0;
  assertDuration('reserveMs', reserveMs);
  const scope = options?.scope ?? currentScope();
  if (scope === undefined) return {};
  if (typeof (scope as Partial<Scope>).remaining !== 'function') {
    throw new TypeError(`Expected \`scope\` to be a loopsafe Scope, got ${describe(scope)}`);
  }
  const remaining = scope.remaining();
  if (remaining === Number.POSITIVE_INFINITY) return {};
  return { [header]: formatBudget(header, Math.max(0, remaining - reserveMs)) };
}
