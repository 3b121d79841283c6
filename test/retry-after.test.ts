import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRetryAfter } from '../src/retry-after.js';

/** Sun, 06 Nov 1994 08:49:37 GMT, the RFC's example date. */
const RFC_DATE = Date.UTC(1994, 10, 6, 8, 49, 37);

/**
 * A UTC time from its fields (month from 1), for any year: `Date.UTC` would
 * read years 0 to 99 as 1900 to 1999, `setUTCFullYear` does not.
 */
function utc(year: number, month: number, day: number, hour = 0, minute = 0, second = 0): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, 0);
  return date.getTime();
}

const LONG_DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const SHORT_DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTH_NAMES = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** `Sunday, 06-Nov-94 08:49:37 GMT`: the RFC 850 form of a time (its two-digit year). */
function rfc850(ms: number): string {
  const d = new Date(ms);
  const yy = ((d.getUTCFullYear() % 100) + 100) % 100;
  return (
    `${LONG_DAYS[d.getUTCDay()] ?? ''}, ${pad(d.getUTCDate())}-${MONTH_NAMES[d.getUTCMonth()] ?? ''}-${pad(yy)} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} GMT`
  );
}

/** `Sun, 06 Nov 1994 08:49:37 GMT`: the IMF-fixdate form of a time in years 0 to 9999. */
function imfFixdate(ms: number): string {
  const d = new Date(ms);
  return (
    `${SHORT_DAYS[d.getUTCDay()] ?? ''}, ${pad(d.getUTCDate())} ${MONTH_NAMES[d.getUTCMonth()] ?? ''} ` +
    `${pad(d.getUTCFullYear(), 4)} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} GMT`
  );
}

/** `Sun Nov  6 08:49:37 1994`: the asctime form of a time in years 0 to 9999. */
function asctime(ms: number): string {
  const d = new Date(ms);
  return (
    `${SHORT_DAYS[d.getUTCDay()] ?? ''} ${MONTH_NAMES[d.getUTCMonth()] ?? ''} ${String(d.getUTCDate()).padStart(2, ' ')} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ${pad(d.getUTCFullYear(), 4)}`
  );
}

const YEAR_MS = 365 * 86_400_000;
/** The largest delay parseRetryAfter accepts: 2^31−1 seconds. */
const MAX_DELAY_MS = (2 ** 31 - 1) * 1000;

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

  it('throws for a value that is not a string, or a bad now', () => {
    expect(() => parseRetryAfter(120 as unknown as string)).toThrow(TypeError);
    expect(() => parseRetryAfter(120 as unknown as string)).toThrow(/`value`.*120/);
    expect(() => parseRetryAfter(['120'] as unknown as string)).toThrow(TypeError);
    expect(() => parseRetryAfter('120', Number.NaN)).toThrow(RangeError);
    expect(() => parseRetryAfter('120', Number.NaN)).toThrow(/`now`.*NaN/);
    expect(() => parseRetryAfter('120', '0' as unknown as number)).toThrow(TypeError);
    expect(() => parseRetryAfter('120', '0' as unknown as number)).toThrow(/`now`.*"0"/);
  });

  it('validates `now` on every path: an absent header, delta-seconds, a date, garbage', () => {
    const bad: [unknown, ErrorConstructor, RegExp][] = [
      [Number.NaN, RangeError, /`now`.*NaN/],
      [Number.POSITIVE_INFINITY, RangeError, /`now`.*Infinity/],
      [Number.NEGATIVE_INFINITY, RangeError, /`now`.*-Infinity/],
      [8.64e15 + 1, RangeError, /`now`.*8640000000000001/],
      [-8.64e15 - 1, RangeError, /`now`.*-8640000000000001/],
      ['0', TypeError, /`now`.*"0"/],
      [null, TypeError, /`now`.*null/],
      [10n, TypeError, /`now`.*10n/],
      [new Date(0), TypeError, /`now`.*Date\(1970/],
    ];
    const values = [
      undefined,
      null,
      '120',
      'Sun, 06 Nov 1994 08:49:37 GMT',
      'Sunday, 06-Nov-94 08:49:37 GMT',
      'soon',
      '',
    ];
    for (const [now, type, message] of bad) {
      for (const value of values) {
        const call = (): unknown => parseRetryAfter(value, now as number);
        expect(call, `${String(value)} with now ${String(now)}`).toThrow(type);
        expect(call, `${String(value)} with now ${String(now)}`).toThrow(message);
      }
    }
    // A bad value is reported whatever `now` is.
    expect(() => parseRetryAfter(120 as unknown as string, Number.NaN)).toThrow(/`value`.*120/);
    // The whole range of a Date is accepted, and an omitted `now` is Date.now().
    expect(parseRetryAfter(undefined, undefined)).toBeUndefined();
    expect(parseRetryAfter('5', 8.64e15)).toBe(5_000);
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', -8.64e15)).toBe(undefined); // > 2^31−1 s ahead
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', 8.64e15)).toBe(0);
  });
});

describe('parseRetryAfter(): RFC 850 two-digit years (RFC 9110 §5.6.7)', () => {
  it('reads the year in the window (now − 50 years, now + 50 years], comparing the whole timestamp to the second', () => {
    const now = utc(2025, 6, 1, 12, 0, 0);
    // Exactly 50 years ahead is not "more than 50 years in the future": 2075.
    expect(parseRetryAfter('Saturday, 01-Jun-75 12:00:00 GMT', now)).toBe(utc(2075, 6, 1, 12) - now);
    expect(parseRetryAfter('Saturday, 01-Jun-75 11:59:59 GMT', now)).toBe(utc(2075, 6, 1, 11, 59, 59) - now);
    // One second more is: the most recent past year ending in 75, 1975.
    expect(parseRetryAfter('Saturday, 01-Jun-75 12:00:01 GMT', now)).toBe(0);
    expect(parseRetryAfter('Sunday, 02-Jun-75 00:00:00 GMT', now)).toBe(0);
    // The same year as the limit, but later in it: 1975 (comparing years alone said 2075).
    expect(parseRetryAfter('Tuesday, 31-Dec-75 23:59:59 GMT', now)).toBe(0);
    expect(parseRetryAfter('Tuesday, 01-Jan-75 00:00:00 GMT', now)).toBe(utc(2075, 1, 1) - now);
    // Well inside the window, on both sides.
    expect(parseRetryAfter('Wednesday, 01-Jun-74 12:00:00 GMT', now)).toBe(utc(2074, 6, 1, 12) - now);
    expect(parseRetryAfter('Sunday, 01-Jun-76 12:00:00 GMT', now)).toBe(0); // 1976
    expect(parseRetryAfter('Sunday, 01-Jun-25 12:00:30 GMT', now)).toBe(30_000); // 2025
  });

  it('holds the boundary to the second when now has milliseconds, or sits one second later', () => {
    // Within now's second, a whole-second timestamp is not after now + 50 years.
    const late = utc(2025, 6, 1, 12, 0, 0) + 999;
    expect(parseRetryAfter('Saturday, 01-Jun-75 12:00:00 GMT', late)).toBe(utc(2075, 6, 1, 12) - late);
    expect(parseRetryAfter('Saturday, 01-Jun-75 12:00:01 GMT', late)).toBe(0);
    const next = utc(2025, 6, 1, 12, 0, 1);
    expect(parseRetryAfter('Saturday, 01-Jun-75 12:00:01 GMT', next)).toBe(utc(2075, 6, 1, 12, 0, 1) - next);
    expect(parseRetryAfter('Saturday, 01-Jun-75 12:00:02 GMT', next)).toBe(0);
    // A fractional `now` (a performance.now()-derived one) too.
    const fractional = utc(2025, 6, 1, 12, 0, 0) + 0.5;
    expect(parseRetryAfter('Saturday, 01-Jun-75 12:00:00 GMT', fractional)).toBe(utc(2075, 6, 1, 12) - fractional);
    expect(parseRetryAfter('Saturday, 01-Jun-75 12:00:01 GMT', fractional)).toBe(0);
  });

  it('handles leap days: on now, at the limit and in the year chosen', () => {
    // From 29 Feb 2024 12:00, the limit is "29 Feb 2074 12:00", a day that does not exist.
    const leap = utc(2024, 2, 29, 12, 0, 0);
    expect(parseRetryAfter('Wednesday, 28-Feb-74 23:59:59 GMT', leap)).toBe(utc(2074, 2, 28, 23, 59, 59) - leap);
    expect(parseRetryAfter('Thursday, 01-Mar-74 00:00:00 GMT', leap)).toBe(0); // 1974
    expect(parseRetryAfter('Friday, 29-Feb-74 12:00:00 GMT', leap)).toBeUndefined(); // neither 2074 nor 1974 has it
    expect(parseRetryAfter('Monday, 29-Feb-72 00:00:00 GMT', leap)).toBe(utc(2072, 2, 29) - leap);
    expect(parseRetryAfter('Thursday, 29-Feb-24 12:00:30 GMT', leap)).toBe(30_000);
    // An ordinary 28 Feb as now: the limit is 28 Feb, to the second.
    const feb28 = utc(2023, 2, 28, 12, 0, 0);
    expect(parseRetryAfter('Tuesday, 28-Feb-73 12:00:00 GMT', feb28)).toBe(utc(2073, 2, 28, 12) - feb28);
    expect(parseRetryAfter('Tuesday, 28-Feb-73 12:00:01 GMT', feb28)).toBe(0);
    // 29-Feb-00: 2100 is not a leap year, 2000 is. Which one is read depends on the limit, to the second.
    const before = utc(2050, 2, 28, 23, 59, 59); // limit 28 Feb 2100 23:59:59: 29 Feb 2100 is beyond, so 2000
    expect(parseRetryAfter('Tuesday, 29-Feb-00 00:00:00 GMT', before)).toBe(0);
    const after = utc(2050, 3, 1, 0, 0, 0); // limit 1 Mar 2100: the year is 2100, which has no 29 Feb
    expect(parseRetryAfter('Tuesday, 29-Feb-00 00:00:00 GMT', after)).toBeUndefined();
    expect(parseRetryAfter('Monday, 01-Mar-00 00:00:00 GMT', after)).toBe(utc(2100, 3, 1) - after);
    // 29-Feb-00 read as 1900 would be invalid too: from 1960 it is 2000, a leap year.
    const sixties = utc(1960, 1, 1);
    expect(parseRetryAfter('Tuesday, 29-Feb-00 00:00:00 GMT', sixties)).toBe(utc(2000, 2, 29) - sixties);
  });

  it('crosses century boundaries, with now in different centuries', () => {
    const eve = utc(1999, 12, 31, 23, 59, 59);
    expect(parseRetryAfter('Friday, 31-Dec-49 23:59:59 GMT', eve)).toBe(utc(2049, 12, 31, 23, 59, 59) - eve);
    expect(parseRetryAfter('Saturday, 01-Jan-50 00:00:00 GMT', eve)).toBe(0); // 1950
    expect(parseRetryAfter('Saturday, 01-Jan-00 00:00:00 GMT', eve)).toBe(1_000); // 2000, a second away
    expect(parseRetryAfter('Friday, 31-Dec-99 23:59:59 GMT', eve)).toBe(0); // 1999

    const y2k = utc(2000, 1, 1);
    expect(parseRetryAfter('Saturday, 01-Jan-50 00:00:00 GMT', y2k)).toBe(utc(2050, 1, 1) - y2k);
    expect(parseRetryAfter('Saturday, 01-Jan-50 00:00:01 GMT', y2k)).toBe(0);

    // The 1960s: "94" is 1994, "10" is 2010 up to exactly 50 years, then 1910.
    const sixties = utc(1960, 1, 1);
    expect(parseRetryAfter('Sunday, 06-Nov-94 08:49:37 GMT', sixties)).toBe(RFC_DATE - sixties);
    expect(parseRetryAfter('Friday, 01-Jan-10 00:00:00 GMT', sixties)).toBe(utc(2010, 1, 1) - sixties);
    expect(parseRetryAfter('Friday, 01-Jan-10 00:00:01 GMT', sixties)).toBe(0);

    // In 2080, "20" is 2120 (40 years ahead), not 2020: the window slides with now.
    const eighties = utc(2080, 1, 1);
    expect(parseRetryAfter('Wednesday, 01-Jan-20 00:00:00 GMT', eighties)).toBe(utc(2120, 1, 1) - eighties);
    expect(parseRetryAfter('Friday, 01-Jan-31 00:00:01 GMT', eighties)).toBe(0); // 2131 is beyond: 2031

    // The 22nd century.
    const later = utc(2150, 1, 1);
    expect(parseRetryAfter('Thursday, 01-Jan-99 00:00:00 GMT', later)).toBe(utc(2199, 1, 1) - later);
    expect(parseRetryAfter('Saturday, 01-Jan-01 00:00:00 GMT', later)).toBe(0); // 2101

    // The first century, where Date.UTC would misread the years, and before year 0.
    const firstCentury = utc(50, 1, 1);
    expect(parseRetryAfter('Thursday, 01-Jan-99 00:00:00 GMT', firstCentury)).toBe(utc(99, 1, 1) - firstCentury);
    expect(parseRetryAfter('Friday, 01-Jan-00 00:00:00 GMT', firstCentury)).toBe(utc(100, 1, 1) - firstCentury);
    expect(parseRetryAfter('Friday, 01-Jan-00 00:00:01 GMT', firstCentury)).toBe(0); // year 0
    const beforeYearZero = utc(-30, 1, 1);
    expect(parseRetryAfter('Monday, 01-Jan-20 00:00:00 GMT', beforeYearZero)).toBe(utc(20, 1, 1) - beforeYearZero);
    expect(parseRetryAfter('Monday, 01-Jan-20 00:00:01 GMT', beforeYearZero)).toBe(0);
  });

  it('reads a 29 February more than 50 years ahead in a year that lacks it as no date', () => {
    // Found by the property below: 29-Feb-00 seen in 2727 is 2800 (73 years ahead), so it is read as 2700, which
    // has no 29 February. The header names no real time, so there is no delay to give.
    const now = utc(2727, 8, 6);
    expect(parseRetryAfter('Tuesday, 29-Feb-00 00:00:00 GMT', now)).toBeUndefined();
    // 2000 has one: seen in 1990 (10 years back), the same header is a time 10 years ahead.
    expect(parseRetryAfter('Tuesday, 29-Feb-00 00:00:00 GMT', utc(1990, 1, 1))).toBe(
      utc(2000, 2, 29) - utc(1990, 1, 1),
    );
  });

  it('reads a year past the range of a Date, for a now at the end of that range', () => {
    const end = 8.64e15; // Sat, 13 Sep 275760 00:00:00 GMT
    // "99" is 275799; the Gregorian calendar repeats every 400 years (146,097 days), so it is 2199 moved on.
    const expected = utc(2199, 1, 1) + ((275_799 - 2199) / 400) * 146_097 * 86_400_000 - end;
    expect(parseRetryAfter('Thursday, 01-Jan-99 00:00:00 GMT', end)).toBe(expected);
    expect(expected).toBeGreaterThan(38 * YEAR_MS);
  });

  it('gives the time until any timestamp within 49 years of now, in any century (property)', () => {
    const nowArb = fc.integer({ min: -8.6e15, max: 8.6e15 });
    const offsetArb = fc.integer({ min: -49 * YEAR_MS, max: 49 * YEAR_MS });
    fc.assert(
      fc.property(nowArb, offsetArb, (now, offset) => {
        const at = Math.floor((now + offset) / 1000) * 1000;
        expect(parseRetryAfter(rfc850(at), now)).toBe(Math.max(0, at - now));
      }),
      { numRuns: 2_000 },
    );
  });

  it('reads a timestamp 51 to 99 years ahead as a past year, and one 51 to 99 years back as ahead (property)', () => {
    const nowArb = fc.integer({ min: utc(1, 1, 1), max: utc(9000, 1, 1) });
    const offsetArb = fc.integer({ min: 51 * YEAR_MS, max: 99 * YEAR_MS });
    fc.assert(
      fc.property(nowArb, offsetArb, (now, offset) => {
        const ahead = Math.floor((now + offset) / 1000) * 1000;
        const earlier = new Date(ahead);
        earlier.setUTCFullYear(earlier.getUTCFullYear() - 100);
        const inPast = new Date(ahead).getUTCDate() === earlier.getUTCDate() ? 0 : undefined;
        expect(parseRetryAfter(rfc850(ahead), now)).toBe(inPast); // undefined: a 29 Feb the year lacks
        const back = Math.floor((now - offset) / 1000) * 1000;
        const shifted = new Date(back);
        shifted.setUTCFullYear(shifted.getUTCFullYear() + 100);
        const expected = new Date(back).getUTCDate() === shifted.getUTCDate() ? shifted.getTime() - now : undefined;
        expect(parseRetryAfter(rfc850(back), now)).toBe(expected); // undefined: a 29 Feb the year lacks
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('parseRetryAfter(): four-digit years', () => {
  it('reads any IMF-fixdate or asctime in years 0000 to 9999 exactly (property)', () => {
    const atArb = fc.integer({ min: utc(0, 1, 1) / 1000, max: utc(9999, 12, 31, 23, 59, 59) / 1000 });
    const offsetArb = fc.integer({ min: -MAX_DELAY_MS - 10_000, max: MAX_DELAY_MS + 10_000 });
    fc.assert(
      fc.property(atArb, offsetArb, (atSeconds, offset) => {
        const at = atSeconds * 1000;
        const now = at - offset;
        fc.pre(Math.abs(now) <= 8.64e15);
        const expected = offset <= 0 ? 0 : offset <= MAX_DELAY_MS ? offset : undefined;
        expect(parseRetryAfter(imfFixdate(at), now)).toBe(expected);
        expect(parseRetryAfter(asctime(at), now)).toBe(expected);
      }),
      { numRuns: 2_000 },
    );
  });
});
