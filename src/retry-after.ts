/**
 * `parseRetryAfter`: the `Retry-After` header (RFC 9110 §10.2.3) as a delay
 * in milliseconds, with a strict grammar and no `Date.parse`.
 *
 * @module
 */
import { describe } from './internal/validate.js';

/**
 * The longest delay accepted, in seconds: 2^31−1 (about 68 years, the largest
 * delta-seconds a cache must be able to hold). Anything longer is absurd.
 */
const MAX_SECONDS = 2_147_483_647; // 2^31 − 1

const DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
const LONG_DAY = '(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)';
const MONTH = '(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * The three HTTP-date forms, compiled on first use: built from template
 * literals at module level, they would stay in every bundle that imports
 * anything from loopsafe (a bundler cannot prove a template literal pure).
 */
let datePatterns: { imfFixdate: RegExp; rfc850: RegExp; asctime: RegExp } | undefined;
function httpDatePatterns(): { imfFixdate: RegExp; rfc850: RegExp; asctime: RegExp } {
  datePatterns ??= {
    /** `Sun, 06 Nov 1994 08:49:37 GMT` */
    imfFixdate: new RegExp(`^${DAY}, (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`),
    /** `Sunday, 06-Nov-94 08:49:37 GMT` (obsolete) */
    rfc850: new RegExp(`^${LONG_DAY}, (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`),
    /** `Sun Nov  6 08:49:37 1994` (obsolete, C's asctime) */
    asctime: new RegExp(`^${DAY} ${MONTH} ((?:\\d| )\\d) ${TIME} (\\d{4})$`),
  };
  return datePatterns;
}
const DELTA_SECONDS = /^[0-9]+$/;
/** Optional whitespace around a field value (SP / HTAB only). */
const OWS = /^[ \t]+|[ \t]+$/g;

/** The largest ECMAScript time value, in ms either side of the epoch (±100,000,000 days). */
const MAX_TIME_VALUE = 8.64e15;
const MS_PER_DAY = 86_400_000;

/**
 * Parses a `Retry-After` header value into the delay it asks for, in
 * milliseconds.
 *
 * Accepted (RFC 9110), with optional spaces or tabs around:
 * - delta-seconds, `1*DIGIT`: `"120"` → `120000`;
 * - an HTTP-date in IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
 *   (`Sunday, 06-Nov-94 08:49:37 GMT`) or asctime (`Sun Nov  6 08:49:37 1994`)
 *   form: the time from `now` until then, or `0` for a date in the past.
 *
 * The two-digit year of the RFC 850 form is read as RFC 9110 §5.6.7 says: a
 * timestamp more than 50 years in the future is the most recent year in the
 * past with the same last two digits. The whole timestamp is compared, to the
 * second, with `now` plus 50 calendar years (UTC, field by field: from
 * 29 Feb 2024 12:00, that limit is 29 Feb 2074 12:00 although that day does not
 * exist, so 28 Feb 2074 is within and 1 Mar 2074 beyond). So the year is the
 * one that puts the timestamp in the sliding window
 * `(now − 50 years, now + 50 years]`: in June 2025, `01-Jun-75 00:00:00` is
 * 2075 and `02-Jun-75 00:00:00` is 1975; in 2080, `20` is 2120. A date that
 * does not exist in the year chosen (`29-Feb-00` read as 2100) is invalid.
 *
 * Everything else is `undefined`: an empty value, signs, decimals, hex,
 * exponents, other date formats, impossible dates (`31 Feb`, `25:00:00`), and
 * absurd delays (more than 2^31−1 seconds, about 68 years). Names of days and
 * months are case-sensitive, as the grammar says; a weekday that does not
 * match the date is tolerated. The value is never handed to `Date.parse`.
 *
 * Both arguments are checked on every call, whatever the other one is: a bad
 * `now` throws even when `value` is absent (nullish) or is delta-seconds.
 *
 * @param value - The header value; `null`/`undefined` (header absent) give `undefined`.
 * @param now - The current time in ms since the epoch, for HTTP-dates: a number
 *   within the range of a `Date` (±8.64e15). @defaultValue `Date.now()`
 * @returns The delay in milliseconds, or `undefined` when the value is not a valid `Retry-After`.
 * @throws `TypeError` (synchronously) when `value` is neither a string nor nullish, or `now` is not a number;
 *   `RangeError` when `now` is `NaN`, infinite or outside the range of a `Date`.
 * @category Backoff and retry
 * @example
 * ```ts
 * import { parseRetryAfter } from 'loopsafe';
 *
 * console.log(parseRetryAfter('120')); // 120000
 * const now = Date.UTC(2025, 0, 1, 12, 0, 0);
 * console.log(parseRetryAfter('Wed, 01 Jan 2025 12:00:30 GMT', now)); // 30000
 * console.log(parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now)); // 0: already past
 * console.log(parseRetryAfter('1.5'), parseRetryAfter('-1'), parseRetryAfter('soon')); // undefined undefined undefined
 * ```
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value !== undefined && value !== null && typeof value !== 'string') {
    throw new TypeError(`Expected \`value\` to be a string, null or undefined, got ${describe(value)}`);
  }
  if (typeof now !== 'number') {
    throw new TypeError(`Expected \`now\` to be a number of ms since the epoch, got ${describe(now)}`);
  }
  if (!(Math.abs(now) <= MAX_TIME_VALUE)) {
    throw new RangeError(
      `Expected \`now\` to be a finite number of ms since the epoch, from -8.64e15 to 8.64e15, got ${describe(now)}`,
    );
  }
  if (value === undefined || value === null) return undefined;
  const text = value.replace(OWS, '');
  if (DELTA_SECONDS.test(text)) {
    const seconds = Number(text);
    return seconds <= MAX_SECONDS ? seconds * 1000 : undefined;
  }
  const at = parseHttpDate(text, now);
  if (at === undefined) return undefined;
  const delay = at - now;
  if (delay <= 0) return 0;
  return delay <= MAX_SECONDS * 1000 ? delay : undefined;
}

/** The fields of a timestamp, month from 0; `second` may be 60 (a leap second). */
interface Fields {
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
}

/** An HTTP-date in one of its three forms, as ms since the epoch; `undefined` if invalid. */
function parseHttpDate(text: string, now: number): number | undefined {
  const { imfFixdate, asctime, rfc850 } = httpDatePatterns();
  let match = imfFixdate.exec(text);
  if (match !== null) return toTime(Number(match[3]), readFields(match[2], match[1], match[4], match[5], match[6]));
  match = asctime.exec(text);
  if (match !== null) return toTime(Number(match[6]), readFields(match[1], match[2], match[3], match[4], match[5]));
  match = rfc850.exec(text);
  if (match === null) return undefined;
  const fields = readFields(match[2], match[1], match[4], match[5], match[6]);
  if (fields === undefined) return undefined;
  return toTime(rfc850Year(Number(match[3]), fields, now), fields);
}

/**
 * RFC 9110 §5.6.7: the year ending in `twoDigits` that puts the timestamp in
 * `(now − 50 years, now + 50 years]`, the limit being `now` with 50 added to
 * its UTC year, compared field by field (so it needs no clamping on 29 Feb).
 */
function rfc850Year(twoDigits: number, fields: Fields, now: number): number {
  // A timestamp is whole seconds: within `now`'s second, it is not after `now`.
  const limit = new Date(Math.floor(now / 1000) * 1000);
  const limitYear = limit.getUTCFullYear() + 50;
  // The largest year ending in `twoDigits` that is not after the limit's year.
  const year = limitYear - ((((limitYear - twoDigits) % 100) + 100) % 100);
  if (year < limitYear) return year;
  const after =
    compare(fields.month, limit.getUTCMonth()) ||
    compare(fields.day, limit.getUTCDate()) ||
    compare(fields.hour, limit.getUTCHours()) ||
    compare(fields.minute, limit.getUTCMinutes()) ||
    compare(fields.second, limit.getUTCSeconds());
  return after > 0 ? year - 100 : year;
}

function compare(a: number, b: number): number {
  return a === b ? 0 : a > b ? 1 : -1;
}

/** The fields of a date and time, or `undefined` for a time that cannot be (`25:00:00`, day 0). */
function readFields(
  monthName: string | undefined,
  dayText: string | undefined,
  hourText: string | undefined,
  minuteText: string | undefined,
  secondText: string | undefined,
): Fields | undefined {
  const month = MONTHS.indexOf(monthName ?? '');
  const day = Number(dayText?.trim());
  const hour = Number(hourText);
  const minute = Number(minuteText);
  const second = Number(secondText);
  // 23:59:60 is a leap second (the only place :60 may appear); it reads as the next second.
  if (month < 0 || hour > 23 || minute > 59 || second > 60 || day < 1 || day > 31) return undefined;
  if (second === 60 && (hour !== 23 || minute !== 59)) return undefined;
  return { month, day, hour, minute, second };
}

/** The time of `fields` in `year`, in ms since the epoch; `undefined` for a day the month lacks (31 Feb). */
function toTime(year: number, fields: Fields | undefined): number | undefined {
  if (fields === undefined) return undefined;
  const { month, day, hour, minute, second } = fields;
  if (day > daysInMonth(year, month)) return undefined;
  return daysFromCivil(year, month, day) * MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000;
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

function daysInMonth(year: number, month: number): number {
  if (month === 1) return isLeapYear(year) ? 29 : 28;
  return month === 3 || month === 5 || month === 8 || month === 10 ? 30 : 31;
}

/**
 * Days from 1970-01-01 to a date of the proleptic Gregorian calendar (month
 * from 0), for any year: plain arithmetic (H. Hinnant's `days_from_civil`), so
 * a year past the range of a `Date` (an RFC 850 year near it) is still exact.
 */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month < 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const monthFromMarch = (month + 10) % 12;
  const dayOfYear = Math.floor((153 * monthFromMarch + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}
