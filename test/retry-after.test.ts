import { describe, expect, it } from 'vitest';
import { parseRetryAfter } from '../src/retry-after.js';

/** Sun, 06 Nov 1994 08:49:37 GMT, the RFC's example date. */
const RFC_DATE = Date.UTC(1994, 10, 6, 8, 49, 37);

describe('parseRetryAfter()', () => {
  it('reads delta-seconds (1*DIGIT) as milliseconds', () => {
    expect(parseRetryAfter('0')).toBe(0);
    expect(parseRetryAfter('1')).toBe(1_000);
    expect(parseRetryAfter('120')).toBe(120_000);
    expect(parseRetryAfter('007')).toBe(7_000);
    expect(parseRetryAfter(' 30\t')).toBe(30_000); // optional whitespace around a field value
    expect(parseRetryAfter(String(2 ** 31 - 1))).toBe((2 ** 31 - 1) * 1000);
  });

  it('reads an IMF-fixdate as the time until then', () => {
    const now = RFC_DATE - 90_000;
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', now)).toBe(90_000);
    expect(parseRetryAfter('Wed, 01 Jan 2025 12:00:30 GMT', Date.UTC(2025, 0, 1, 12, 0, 0, 250))).toBe(29_750);
    expect(parseRetryAfter('Thu, 29 Feb 2024 00:00:00 GMT', Date.UTC(2024, 1, 28))).toBe(86_400_000); // leap day
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:59:60 GMT', Date.UTC(2025, 11, 31, 23, 59, 0))).toBe(60_000); // leap second
  });

  it('reads the obsolete RFC 850 form, a two-digit year at most 50 years ahead', () => {
    expect(parseRetryAfter('Sunday, 06-Nov-94 08:49:37 GMT', RFC_DATE - 5_000)).toBe(5_000);
    // In 2025, "30" is 2030 (5 years ahead), "80" is 1980 (2080 would be 55 years ahead).
    const now = Date.UTC(2025, 5, 1);
    expect(parseRetryAfter('Saturday, 01-Jun-30 00:00:00 GMT', now)).toBe(Date.UTC(2030, 5, 1) - now);
    expect(parseRetryAfter('Sunday, 01-Jun-80 00:00:00 GMT', now)).toBe(0);
  });

  it('reads the obsolete asctime form, with a space-padded day', () => {
    expect(parseRetryAfter('Sun Nov  6 08:49:37 1994', RFC_DATE - 1_000)).toBe(1_000);
    expect(parseRetryAfter('Sun Nov 16 08:49:37 1994', RFC_DATE)).toBe(10 * 86_400_000);
  });

  it('gives 0 for a date in the past', () => {
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT')).toBe(0);
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', RFC_DATE)).toBe(0);
    expect(parseRetryAfter('Sat, 01 Jan 0000 00:00:00 GMT', RFC_DATE)).toBe(0);
  });

  it('uses Date.now() by default', () => {
    const inAMinute = new Date(Date.now() + 60_000).toUTCString(); // IMF-fixdate, rounded down to the second
    const delay = parseRetryAfter(inAMinute);
    expect(delay).toBeGreaterThan(58_000);
    expect(delay).toBeLessThanOrEqual(60_000);
  });

  it('gives undefined for everything else', () => {
    const garbage = [
      '',
      ' ',
      '\t',
      '+1',
      '-1',
      '-0',
      '1.5',
      '1.',
      '.5',
      '1,000',
      '1_000',
      '0x10',
      '0b1',
      '1e3',
      '1E3',
      'Infinity',
      'NaN',
      '٣',
      '１２',
      '1 2',
      '12s',
      'soon',
      'null',
      'undefined',
      '\n120',
      '120\n',
      String(2 ** 31),
      '9'.repeat(400),
      // Other date formats Date.parse would accept:
      '2025-01-01T12:00:00Z',
      '2025-01-01',
      'Wed, 01 Jan 2025 12:00:00 +0000',
      'Wed, 01 Jan 2025 12:00:00 UTC',
      'Wed, 1 Jan 2025 12:00:00 GMT',
      'wed, 01 jan 2025 12:00:00 gmt',
      'Wed, 01 January 2025 12:00:00 GMT',
      'Wed 01 Jan 2025 12:00:00 GMT',
      'Wed,  01 Jan 2025 12:00:00 GMT',
      'Wed, 01 Jan 25 12:00:00 GMT',
      'Wednesday, 01-Jan-2025 12:00:00 GMT',
      'Wed, 01-Jan-25 12:00:00 GMT',
      'Wed Jan 1 12:00:00 2025',
      'Wed Jan 01 12:00:00 2025 GMT',
      'Jan 1 2025',
      'tomorrow',
      // Impossible dates and times:
      'Fri, 31 Feb 2025 00:00:00 GMT',
      'Thu, 29 Feb 2025 00:00:00 GMT',
      'Wed, 00 Jan 2025 00:00:00 GMT',
      'Wed, 32 Jan 2025 00:00:00 GMT',
      'Wed, 01 Jan 2025 24:00:00 GMT',
      'Wed, 01 Jan 2025 12:60:00 GMT',
      'Wed, 01 Jan 2025 12:00:61 GMT',
      'Wed, 01 Jan 2025 12:00:60 GMT',
      // Absurd: more than 2^31−1 seconds ahead.
      'Fri, 31 Dec 9999 23:59:59 GMT',
    ];
    const now = Date.UTC(2025, 0, 1, 11, 0, 0);
    const accepted = garbage.filter((value) => parseRetryAfter(value, now) !== undefined);
    expect(accepted).toEqual([]);
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });

  it('never hands the value to Date.parse', () => {
    const original = Date.parse;
    let calls = 0;
    Date.parse = (text: string) => {
      calls++;
      return original(text);
    };
    try {
      parseRetryAfter('Wed, 01 Jan 2025 12:00:30 GMT', 0);
      parseRetryAfter('2025-01-01T12:00:00Z', 0);
      parseRetryAfter('Sunday, 06-Nov-94 08:49:37 GMT', 0);
    } finally {
      Date.parse = original;
    }
    expect(calls).toBe(0);
  });

  it('throws a TypeError for a value that is not a string, or a bad now', () => {
    expect(() => parseRetryAfter(120 as unknown as string)).toThrow(/`value`.*120/);
    expect(() => parseRetryAfter(['120'] as unknown as string)).toThrow(TypeError);
    expect(() => parseRetryAfter('120', Number.NaN)).toThrow(/`now`.*NaN/);
    expect(() => parseRetryAfter('120', '0' as unknown as number)).toThrow(TypeError);
  });
});
