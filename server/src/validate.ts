/**
 * Input validation for requests and WebSocket messages: every bad value
 * becomes a {@link BadRequest} whose message names the input and shows the value.
 */
import { FAULTS, isFault, type Fault } from './upstream.js';

/** Bad client input: HTTP 400, WebSocket close 1008. */
export class BadRequest extends Error {
  override name = 'BadRequest';
}

const show = (value: unknown): string => {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
};

/** Reads query parameters, rejecting unknown and repeated ones. */
export class Query {
  readonly #params: URLSearchParams;

  constructor(params: URLSearchParams, allowed: readonly string[]) {
    for (const key of new Set(params.keys())) {
      if (!allowed.includes(key)) {
        throw new BadRequest(`unknown query parameter ${show(key)}; allowed: ${allowed.join(', ') || 'none'}`);
      }
      if (params.getAll(key).length > 1) throw new BadRequest(`query parameter ${show(key)} must be given once`);
    }
    this.#params = params;
  }

  has(key: string): boolean {
    return this.#params.has(key);
  }

  int(key: string, min: number, max: number, fallback: number): number {
    const raw = this.#params.get(key);
    if (raw === null) return fallback;
    // Decimal digits only: no `0x1`, `1e3`, ` 3` or `3.0`, which Number() would take.
    if (!/^-?\d{1,15}$/.test(raw))
      throw new BadRequest(`${key} must be an integer from ${min} to ${max}, got ${show(raw)}`);
    return readInt(key, Number(raw), min, max, raw);
  }

  rate(key: string, fallback: number): number {
    const raw = this.#params.get(key);
    if (raw === null) return fallback;
    const value = Number(raw);
    // A plain decimal: no `0x1`, `1e-1`, `Infinity` or blanks, which Number() would take.
    if (!/^\d(\.\d{1,15})?$/.test(raw) || !(value >= 0 && value <= 1))
      throw new BadRequest(`${key} must be a number from 0 to 1, got ${show(raw)}`);
    return value;
  }

  fault(key: string, fallback: Fault): Fault {
    const raw = this.#params.get(key);
    if (raw === null) return fallback;
    return readFault(key, raw);
  }

  /** A fault, or a comma-separated list of exactly `n` faults (one per upstream call). */
  faultList(key: string, n: number): Fault | Fault[] | undefined {
    const raw = this.#params.get(key);
    if (raw === null) return undefined;
    if (!raw.includes(',')) return readFault(key, raw);
    const list = raw.split(',').map((part) => readFault(key, part));
    if (list.length !== n) throw new BadRequest(`${key} lists ${list.length} faults but n is ${n}`);
    return list;
  }
}

/**
 * Reads an integer within bounds: a JSON number, never a string that looks like one (`"3"`).
 *
 * @param shown - What to show as the value in the error (the raw query string).
 * @throws {@link BadRequest} naming `name` and showing the value.
 */
export function readInt(name: string, raw: unknown, min: number, max: number, shown: unknown = raw): number {
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < min || raw > max) {
    throw new BadRequest(`${name} must be an integer from ${min} to ${max}, got ${show(shown)}`);
  }
  return raw;
}

/**
 * Reads a fault name.
 *
 * @throws {@link BadRequest} for anything not in {@link FAULTS}.
 */
export function readFault(name: string, raw: unknown): Fault {
  if (typeof raw !== 'string' || !isFault(raw))
    throw new BadRequest(`${name} must be one of ${FAULTS.join(', ')}, got ${show(raw)}`);
  return raw;
}

/**
 * Picks the fault of each of `n` upstream calls: an explicit list as given; a
 * single fault for each call with probability `rate`; `none` without a fault.
 *
 * @returns One fault per call.
 */
export function planFaults(
  n: number,
  fault: Fault | Fault[] | undefined,
  rate: number,
  random: () => number = Math.random,
): Fault[] {
  if (Array.isArray(fault)) return fault;
  return Array.from({ length: n }, () => (fault !== undefined && fault !== 'none' && random() < rate ? fault : 'none'));
}
