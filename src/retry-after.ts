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

/**
 * Parses a `Retry-After` header value into the delay it asks for, in
 * milliseconds.
 *
 * Accepted (RFC 9110), with optional spaces or tabs around:
 * - delta-seconds, `1*DIGIT`: `"120"` → `120000`;
 * - an HTTP-date in IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
 *   (`Sunday, 06-Nov-94 08:49:37 GMT`, the two-digit year read as at most 50
 *   years ahead) or asctime (`Sun Nov  6 08:49:37 1994`) form: the time from
 *   `now` until then, or `0` for a date in the past.
 *
 * Everything else is `undefined`: an empty value, signs, decimals, hex,
 * exponents, other date formats, impossible dates (`31 Feb`, `25:00:00`), and
 * absurd delays (more than 2^31−1 seconds, about 68 years). Names of days and
 * months are case-sensitive, as the grammar says; a weekday that does not
 * match the date is tolerated. The value is never handed to `Date.parse`.
 *
 * @param value - The header value; `null`/`undefined` (header absent) give `undefined`.
 * @param now - The current time in ms since the epoch, for HTTP-dates. @defaultValue `Date.now()`
 * @returns The delay in milliseconds, or `undefined` when the value is not a valid `Retry-After`.
 * @throws `TypeError` (synchronously) when `value` is neither a string nor nullish, or `now` is not a finite number.
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
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new TypeError(`Expected \`value\` to be a string, got ${describe(value)}`);
  if (typeof now !== 'number' || !Number.isFinite(now)) {
    throw new TypeError(`Expected \`now\` to be a finite number of ms since the epoch, got ${describe(now)}`);
  }
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

/** An HTTP-date in one of its three forms, as ms since the epoch; `undefined` if invalid. */
function parseHttpDate(text: string, now: number): number | undefined {
  const { imfFixdate, asctime, rfc850 } = httpDatePatterns();
  let match = imfFixdate.exec(text);
  if (match !== null) return toTime(match[3], match[2], match[1], match[4], match[5], match[6]);
  match = asctime.exec(text);
  if (match !== null) return toTime(match[6], match[1], match[2], match[3], match[4], match[5]);
  match = rfc850.exec(text);
  if (match === null) return undefined;
  const twoDigits = Number(match[3]);
  // RFC 9110 §5.6.7: a two-digit year more than 50 years ahead is the most recent past year with those digits.
  const currentYear = new Date(now).getUTCFullYear();
  let year = currentYear - (currentYear % 100) + twoDigits;
  if (year > currentYear + 50) year -= 100;
  return toTime(String(year), match[2], match[1], match[4], match[5], match[6]);
}

function toTime(
  yearText: string | undefined,
  monthName: string | undefined,
  dayText: string | undefined,
  hourText: string | undefined,
  minuteText: string | undefined,
  secondText: string | undefined,
): number | undefined {
  const year = Number(yearText);
  const month = MONTHS.indexOf(monthName ?? '');
  const day = Number(dayText?.trim());
  const hour = Number(hourText);
  const minute = Number(minuteText);
  const second = Number(secondText);
  // 23:59:60 is a leap second (the only place :60 may appear); it reads as the next second.
  if (hour > 23 || minute > 59 || second > 60 || day < 1) return undefined;
  if (second === 60 && (hour !== 23 || minute !== 59)) return undefined;
  const date = new Date(0);
  date.setUTCFullYear(year, month, day);
  if (date.getUTCMonth() !== month || date.getUTCDate() !== day) return undefined; // 31 Feb, 30 Feb…
  date.setUTCHours(hour, minute, second, 0);
  return date.getTime();
}
