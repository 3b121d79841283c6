/**
 * Deadline headers: every format read and written, malformed values, the
 * three header shapes (IncomingHttpHeaders, Headers, a plain record),
 * clamping, and the round trip deadlineHeaders → requestDeadline.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { timeoutContext, withTimeout } from '../../src/index.js';
import { createManualClock } from '../../src/testing.js';
import { deadlineHeaders, DeadlineHeaderError, requestDeadline, type DeadlineHeader } from '../../src/http.js';

const HEADERS: readonly DeadlineHeader[] = ['x-request-timeout', 'grpc-timeout', 'x-envoy-expected-rq-timeout-ms'];

describe('requestDeadline', () => {
  it('reads x-request-timeout and the envoy header as whole milliseconds', () => {
    expect(requestDeadline({ 'x-request-timeout': '2500' })).toBe(2_500);
    expect(requestDeadline({ 'x-envoy-expected-rq-timeout-ms': '15000' })).toBe(15_000);
    expect(requestDeadline({ 'x-request-timeout': '0' })).toBe(0);
    expect(requestDeadline({ 'x-request-timeout': ' 42 ' })).toBe(42); // a record may keep the whitespace HTTP strips
    expect(requestDeadline({ 'x-request-timeout': '999999999999999' })).toBe(999_999_999_999_999);
  });

  it('reads grpc-timeout in every unit, exactly as the gRPC HTTP/2 spec writes it', () => {
    const cases: [string, number][] = [
      ['1H', 3_600_000],
      ['2M', 120_000],
      ['3S', 3_000],
      ['250m', 250],
      ['1500u', 1.5],
      ['2000000n', 2],
      ['99999999m', 99_999_999],
      ['0S', 0],
      ['00000001S', 1_000],
    ];
    for (const [value, ms] of cases) expect(requestDeadline({ 'grpc-timeout': value }), value).toBe(ms);
  });

  it('rejects every malformed value with a DeadlineHeaderError naming the header and the value', () => {
    const bad: [DeadlineHeader, string][] = [
      ['x-request-timeout', ''],
      ['x-request-timeout', 'soon'],
      ['x-request-timeout', '-1'],
      ['x-request-timeout', '+1'],
      ['x-request-timeout', '1.5'],
      ['x-request-timeout', '1e3'],
      ['x-request-timeout', '0x10'],
      ['x-request-timeout', '1000000000000000'], // 16 digits
      ['x-request-timeout', '100, 200'], // sent twice, as Node joins it
      ['x-envoy-expected-rq-timeout-ms', 'Infinity'],
      ['grpc-timeout', '5'],
      ['grpc-timeout', 'S'],
      ['grpc-timeout', '123456789S'], // 9 digits
      ['grpc-timeout', '10s'], // units are case-sensitive
      ['grpc-timeout', '10ms'],
      ['grpc-timeout', '1.5S'],
      ['grpc-timeout', '-1S'],
      ['grpc-timeout', '1 S'],
      ['grpc-timeout', '1S, 2S'],
    ];
    for (const [header, value] of bad) {
      let thrown: unknown;
      try {
        requestDeadline({ [header]: value });
      } catch (error) {
        thrown = error;
      }
      expect(thrown, `${header}: ${value}`).toBeInstanceOf(DeadlineHeaderError);
      const error = thrown as DeadlineHeaderError;
      expect(error).toMatchObject({ name: 'DeadlineHeaderError', status: 400, header, value });
      expect(error.message).toContain(header);
      expect(error.message).toContain(JSON.stringify(value));
    }
  });

  it('rejects a header sent twice as an array, and reads a single-element array', () => {
    expect(() => requestDeadline({ 'x-request-timeout': ['100', '200'] })).toThrow(DeadlineHeaderError);
    expect(requestDeadline({ 'x-request-timeout': ['100'] })).toBe(100);
    const headers = new Headers();
    headers.append('grpc-timeout', '1S');
    headers.append('grpc-timeout', '2S');
    expect(() => requestDeadline(headers)).toThrow(DeadlineHeaderError); // Headers joins them: "1S, 2S"
  });

  it('takes the smallest budget among the headers present, and clamps it to maxMs', () => {
    const all = { 'x-request-timeout': '5000', 'grpc-timeout': '3S', 'x-envoy-expected-rq-timeout-ms': '4000' };
    expect(requestDeadline(all)).toBe(3_000);
    expect(requestDeadline(all, { maxMs: 1_000 })).toBe(1_000);
    expect(requestDeadline(all, { headers: ['x-request-timeout'] })).toBe(5_000);
    expect(requestDeadline(all, { headers: ['x-envoy-expected-rq-timeout-ms', 'x-request-timeout'] })).toBe(4_000);
    // A header that is not read is not validated either.
    expect(
      requestDeadline({ 'x-request-timeout': '100', 'grpc-timeout': 'junk' }, { headers: ['x-request-timeout'] }),
    ).toBe(100);
  });

  it('returns undefined when no deadline header is present', () => {
    expect(requestDeadline({})).toBeUndefined();
    expect(requestDeadline({ 'content-type': 'text/plain', 'x-request-timeout': undefined })).toBeUndefined();
    expect(requestDeadline(new Headers())).toBeUndefined();
  });

  it('reads Headers and records case-insensitively', () => {
    expect(requestDeadline(new Headers({ 'X-Request-Timeout': '700' }))).toBe(700);
    expect(requestDeadline({ 'Grpc-Timeout': '2S' })).toBe(2_000);
    expect(requestDeadline({ 'X-ENVOY-EXPECTED-RQ-TIMEOUT-MS': '90' })).toBe(90);
  });

  it('throws TypeError/RangeError at the call site for bad arguments', () => {
    for (const headers of [undefined, null, 'x-request-timeout: 5', 5, ['x-request-timeout']]) {
      expect(() => requestDeadline(headers as never), String(headers)).toThrow(TypeError);
      expect(() => requestDeadline(headers as never), String(headers)).toThrow(/`headers`/);
    }
    expect(() => requestDeadline({}, { maxMs: -1 })).toThrow(RangeError);
    expect(() => requestDeadline({}, { maxMs: Number.NaN })).toThrow(/`maxMs`.*NaN/);
    expect(() => requestDeadline({}, { headers: [] })).toThrow(/`headers`/);
    expect(() => requestDeadline({}, { headers: ['x-timeout' as DeadlineHeader] })).toThrow(
      /`headers\[0\]`.*"x-timeout"/,
    );
    expect(() => requestDeadline({}, { maxMS: 5 } as never)).toThrow(/maxMS/);
  });
});

describe('deadlineHeaders', () => {
  it('writes the remaining budget minus the reserve, rounded down, in each format', async () => {
    const clock = createManualClock();
    await withTimeout(
      2_500.5,
      () => {
        expect(deadlineHeaders()).toEqual({ 'x-request-timeout': '2500' });
        expect(deadlineHeaders({ header: 'x-envoy-expected-rq-timeout-ms' })).toEqual({
          'x-envoy-expected-rq-timeout-ms': '2500',
        });
        expect(deadlineHeaders({ header: 'grpc-timeout' })).toEqual({ 'grpc-timeout': '2500500u' });
        expect(deadlineHeaders({ reserveMs: 500 })).toEqual({ 'x-request-timeout': '2000' });
        expect(deadlineHeaders({ reserveMs: 10_000 })).toEqual({ 'x-request-timeout': '0' }); // floored at 0
      },
      { clock },
    );
  });

  it('writes grpc-timeout in the finest unit that fits 8 digits', () => {
    const clock = createManualClock();
    const cases: [number, string][] = [
      [0, '0n'],
      [50, '50000000n'],
      [99.999999, '99999999n'],
      [100, '100000u'],
      [99_999, '99999000u'],
      [100_000, '100000m'],
      [99_999_999, '99999999m'],
      [100_000_000, '100000S'],
      [99_999_999_000, '99999999S'],
      [100_000_000_000, '1666666M'],
      [1e16, '99999999H'], // capped at the largest value it can hold
    ];
    for (const [ms, value] of cases) {
      using scope = timeoutContext(ms, { clock });
      expect(deadlineHeaders({ scope, header: 'grpc-timeout' }), String(ms)).toEqual({ 'grpc-timeout': value });
    }
  });

  it('round-trips through requestDeadline without ever growing the budget', () => {
    const clock = createManualClock();
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e12, noNaN: true }),
        fc.constantFrom(...HEADERS),
        fc.double({ min: 0, max: 1_000, noNaN: true }),
        (ms, header, reserveMs) => {
          using scope = timeoutContext(ms, { clock });
          const sent = deadlineHeaders({ scope, header, reserveMs });
          const read = requestDeadline(sent) as number;
          const budget = Math.max(0, ms - reserveMs);
          expect(read).toBeLessThanOrEqual(budget);
          // What is lost is rounding down in the unit written: under 1 ms for the integer formats,
          // under one unit of the finest that fits 8 digits for grpc-timeout.
          const unit =
            header === 'grpc-timeout'
              ? ([1e-6, 1e-3, 1, 1e3, 6e4, 3.6e6].find((u) => Math.floor(budget / u) <= 99_999_999) as number)
              : 1;
          expect(budget - read).toBeLessThan(unit * (1 + 1e-9));
        },
      ),
    );
  });

  it('is empty with no scope, or a scope without a deadline', () => {
    expect(deadlineHeaders()).toEqual({});
    using scope = timeoutContext(Number.POSITIVE_INFINITY);
    expect(deadlineHeaders({ scope })).toEqual({});
  });

  it('sends 0 for a scope that has expired or was cancelled', async () => {
    const clock = createManualClock();
    using scope = timeoutContext(100, { clock });
    await clock.advance(150);
    expect(deadlineHeaders({ scope })).toEqual({ 'x-request-timeout': '0' });
    using cancelled = timeoutContext(1_000, { clock });
    cancelled.cancel(new Error('stop'));
    expect(deadlineHeaders({ scope: cancelled })).toEqual({ 'x-request-timeout': '0' });
  });

  it('throws TypeError/RangeError at the call site for bad options', () => {
    expect(() => deadlineHeaders({ header: 'x-timeout' as DeadlineHeader })).toThrow(/`header`.*"x-timeout"/);
    expect(() => deadlineHeaders({ reserveMs: -1 })).toThrow(RangeError);
    expect(() => deadlineHeaders({ reserveMs: '5' as never })).toThrow(/`reserveMs`/);
    expect(() => deadlineHeaders({ scope: {} as never })).toThrow(/`scope`/);
    expect(() => deadlineHeaders({ reserve: 5 } as never)).toThrow(/reserve/);
    expect(() => deadlineHeaders('grpc-timeout' as never)).toThrow(TypeError);
  });
});
