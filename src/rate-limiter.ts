/**
 * `RateLimiter` and `KeyedRateLimiter`: token buckets whose waiters honour the
 * ambient deadline and an abort signal — a wait that would pass the deadline
 * is refused at once — and leave no trace when they give up.
 *
 * @module
 */
import { systemClock, type Clock } from './clock.js';
import { RateLimitError } from './errors.js';
import { ambientScope, type ScopeNode } from './internal/engine/index.js';
import { publishRateLimit } from './internal/publish.js';
import { createDeferred, rejectedAtCaller } from './internal/stacks.js';
import { TokenBucket, type BucketConfig, type BucketOwner } from './internal/token-bucket.js';
import {
  assertClock,
  assertDuration,
  assertOptionalString,
  assertOptions,
  assertSignal,
  describe,
} from './internal/validate.js';

/**
 * Options for {@link RateLimiter}.
 *
 * @category Resilience policies
 */
export interface RateLimiterOptions {
  /** Tokens added per second: a finite number > 0 (fractions allowed: `0.5` is one every 2 s). */
  ratePerSecond: number;
  /**
   * The bucket's capacity — the most tokens taken at once after a quiet spell — and what it
   * starts with: a finite number > 0. No `cost` may exceed it.
   * @defaultValue `max(1, ratePerSecond)`: one second's worth
   */
  burst?: number | undefined;
  /** Names the limiter in its {@link RateLimitError}s and on `loopsafe:rate-limit`. @defaultValue `'RateLimiter'` */
  name?: string | undefined;
  /** @defaultValue {@link systemClock} */
  clock?: Clock | undefined;
}

/**
 * Options for {@link KeyedRateLimiter}.
 *
 * @category Resilience policies
 */
export interface KeyedRateLimiterOptions extends Omit<RateLimiterOptions, 'name'> {
  /**
   * The most keys (buckets) held at once: an integer ≥ 1. See {@link KeyedRateLimiter} for
   * which bucket makes room for a new key.
   */
  maxKeys: number;
  /** @defaultValue `'KeyedRateLimiter'` */
  name?: string | undefined;
}

/**
 * Options for {@link RateLimiter.acquire} and {@link KeyedRateLimiter.acquire}.
 *
 * @category Resilience policies
 */
export interface RateLimitAcquireOptions {
  /** Gives up waiting when it aborts; the acquire rejects with the signal's reason (`===`). */
  signal?: AbortSignal | undefined;
  /**
   * Tokens to take: a finite number > 0, at most `burst`.
   * @defaultValue `1`
   */
  cost?: number | undefined;
  /**
   * The most milliseconds to wait: when the tokens would not be there sooner, `acquire` rejects
   * at once with a {@link RateLimitError} (`0`: take them now or fail, with the error).
   * @defaultValue `Infinity` (the ambient deadline still applies)
   */
  timeout?: number | undefined;
}

const LIMITER_OPTIONS = /* @__PURE__ */ new Set(['ratePerSecond', 'burst', 'name', 'clock']);
const KEYED_OPTIONS = /* @__PURE__ */ new Set(['ratePerSecond', 'burst', 'name', 'clock', 'maxKeys']);
const ACQUIRE_OPTIONS = /* @__PURE__ */ new Set(['signal', 'cost', 'timeout']);

/** How many of the least recently used idle buckets are searched for a full one to evict. */
const EVICTION_SCAN = 8;

function positive(name: string, value: unknown, what: string): asserts value is number {
  if (typeof value !== 'number') throw new TypeError(`Expected \`${name}\` to be ${what}, got ${describe(value)}`);
  if (!(value > 0 && Number.isFinite(value)))
    throw new RangeError(`Expected \`${name}\` to be ${what}, got ${describe(value)}`);
}

function readConfig(
  fn: string,
  options: RateLimiterOptions | KeyedRateLimiterOptions,
  known: ReadonlySet<string>,
): BucketConfig {
  if (typeof options !== 'object' || (options as unknown) === null || Array.isArray(options)) {
    throw new TypeError(`Expected the options of ${fn}() to be an object, got ${describe(options)}`);
  }
  assertOptions(fn, options, known);
  const { ratePerSecond, name, clock } = options;
  positive('ratePerSecond', ratePerSecond, 'a finite number > 0');
  const burst = options.burst === undefined ? Math.max(1, ratePerSecond) : options.burst;
  positive('burst', burst, 'a finite number > 0');
  assertOptionalString('name', name);
  assertClock('clock', clock);
  return { name: name ?? fn, ratePerMs: ratePerSecond / 1000, burst, clock: clock ?? systemClock };
}

function readCost(cost: unknown, burst: number): number {
  if (cost === undefined) {
    if (burst < 1) throw new RangeError(`Expected \`cost\` (1 by default) to be at most burst (${String(burst)})`);
    return 1;
  }
  positive('cost', cost, 'a finite number > 0');
  if (cost > burst) {
    throw new RangeError(
      `Expected \`cost\` to be at most burst (${String(burst)}), got ${describe(cost)}: it could never be granted`,
    );
  }
  return cost;
}

/** Checks `acquire`'s options (the call then reads them as they are: nothing is allocated). */
function checkAcquire(options: RateLimitAcquireOptions | undefined, burst: number): void {
  if (options === undefined) {
    readCost(undefined, burst);
    return;
  }
  assertOptions('acquire', options, ACQUIRE_OPTIONS);
  assertSignal('signal', options.signal);
  if (options.timeout !== undefined) assertDuration('timeout', options.timeout);
  readCost(options.cost, burst);
}

/**
 * The early exits every `acquire` shares: an aborted signal, a cancelled or
 * expired ambient scope. Returns the rejection, or `undefined` to go on.
 */
function earlyExit(signal: AbortSignal | undefined, scope: ScopeNode | undefined): Promise<never> | undefined {
  if (signal?.aborted === true) return rejectedAtCaller(signal.reason);
  if (scope === undefined) return undefined;
  // Tokens are no reason to go on past the deadline or after a cancellation.
  try {
    scope.check();
  } catch (reason) {
    return Promise.reject(reason);
  }
  return undefined;
}

/**
 * A token-bucket rate limiter: `ratePerSecond` tokens a second, up to
 * `burst` held.
 *
 * - `acquire()` takes its tokens at once when they are there and nobody is
 *   queued; otherwise it waits its turn, first come first served (a big
 *   `cost` at the head is not overtaken by small ones behind it).
 * - It never waits past a deadline: when its tokens would not be there before
 *   the ambient scope's deadline (or its own `timeout`), it rejects **at
 *   once** with a {@link RateLimitError} whose `retryAfterMs` says when they
 *   would be — a `Retry-After` for the client — published on
 *   `loopsafe:rate-limit`.
 * - A waiter gives up when its `signal` aborts (rejecting with the reason,
 *   `===`) or the ambient scope ends; it leaves the queue in O(1), having
 *   taken no token, with no listener left behind.
 * - Tokens refill from the clock when the limiter is used: no timer runs
 *   while nobody waits, and one (for the head of the queue) while somebody does.
 *
 * @category Resilience policies
 * @example
 * ```ts
 * import { RateLimitError, RateLimiter } from 'loopsafe';
 *
 * const limiter = new RateLimiter({ ratePerSecond: 100, burst: 2 });
 * console.log(limiter.tryAcquire(), limiter.tryAcquire(), limiter.tryAcquire()); // true true false
 * const started = performance.now();
 * await limiter.acquire(); // waits ~10 ms for the next token
 * console.log(performance.now() - started >= 5); // true
 * try {
 *   await limiter.acquire({ cost: 2, timeout: 1 }); // would wait ~20 ms: refused at once
 * } catch (error) {
 *   console.log(error instanceof RateLimitError && error.retryAfterMs > 1); // true
 * }
 * ```
 */
export class RateLimiter {
  /** The limiter's name. */
  readonly name: string;
  /** Tokens added per second. */
  readonly ratePerSecond: number;
  /** The bucket's capacity. */
  readonly burst: number;
  readonly #clock: Clock;
  readonly #bucket: TokenBucket;

  /**
   * @param options - `ratePerSecond` (required), `burst`, `name`, `clock`.
   * @throws `TypeError`/`RangeError` (synchronously) for a missing `ratePerSecond` or a bad option.
   */
  constructor(options: RateLimiterOptions) {
    const config = readConfig('RateLimiter', options, LIMITER_OPTIONS);
    this.name = config.name;
    this.ratePerSecond = config.ratePerMs * 1000;
    this.burst = config.burst;
    this.#clock = config.clock;
    this.#bucket = new TokenBucket(config, config.clock.now());
  }

  /** Tokens in the bucket now (a fraction while it refills). */
  get available(): number {
    return this.#bucket.tokens(this.#clock.now());
  }

  /** Callers queued in `acquire()`. */
  get waiting(): number {
    return this.#bucket.waiting;
  }

  /**
   * Takes `cost` tokens if they are there and nobody is queued, without waiting.
   *
   * @param cost - Tokens to take: a finite number > 0, at most `burst` (default `1`).
   * @returns Whether it took them.
   * @throws `TypeError`/`RangeError` (synchronously) for a bad `cost`.
   */
  tryAcquire(cost?: number): boolean {
    const tokens = readCost(cost, this.burst);
    return this.#bucket.tryTake(tokens, this.#clock.now());
  }

  /**
   * Takes `cost` tokens, waiting for them (FIFO) if need be.
   *
   * @param options - `signal`, `cost`, `timeout`.
   * @returns A promise that resolves once the tokens are taken.
   * @throws {@link RateLimitError} (rejection, at once) when the tokens would not be there before the ambient deadline or `timeout`.
   * @throws the signal's reason (rejection, `===`) when it aborts first; the ambient scope's reason (its {@link TimeoutError}) when it ends first.
   * @throws `TypeError`/`RangeError` (synchronously) for a bad option (a `cost` above `burst` included).
   */
  acquire(options?: RateLimitAcquireOptions): Promise<void> {
    checkAcquire(options, this.burst);
    const signal = options?.signal;
    const scope = ambientScope();
    return (
      earlyExit(signal, scope) ??
      this.#bucket.acquire(options?.cost ?? 1, options?.timeout ?? Number.POSITIVE_INFINITY, signal, scope)
    );
  }
}

/**
 * A rate limiter per key (a client, a tenant, an upstream host): one
 * {@link RateLimiter}-style bucket per key, with the same `acquire` and
 * `tryAcquire`, and at most `maxKeys` buckets held.
 *
 * **Which bucket makes room for a new key.** Buckets are kept in
 * least-recently-used order. When a new key comes and `maxKeys` buckets are
 * held, the limiter evicts a bucket nobody waits on: among the 8 least
 * recently used, the first that has refilled to `burst` — a full bucket is
 * exactly what a new one would be, so evicting it loses nothing — else the
 * least recently used one (its key then starts again from a full bucket: a
 * key that is evicted while in debt can get up to `burst` tokens early; size
 * `maxKeys` above the number of keys active within `burst / ratePerSecond`
 * seconds, and that never happens). A bucket with waiters is never evicted;
 * when every bucket has waiters, a new key is refused: `tryAcquire` answers
 * `false`, `acquire` rejects at once with a {@link RateLimitError} whose
 * `retryAfterMs` is the time `cost` tokens take to refill.
 *
 * @category Resilience policies
 * @example
 * ```ts
 * import { KeyedRateLimiter } from 'loopsafe';
 *
 * const perClient = new KeyedRateLimiter({ ratePerSecond: 1, burst: 2, maxKeys: 10_000 });
 * console.log(perClient.tryAcquire('10.0.0.1'), perClient.tryAcquire('10.0.0.1'), perClient.tryAcquire('10.0.0.1')); // true true false
 * console.log(perClient.tryAcquire('10.0.0.2')); // true: another client, another bucket
 * await perClient.acquire('10.0.0.3', { cost: 2 });
 * console.log(perClient.size); // 3
 * ```
 */
export class KeyedRateLimiter<K = string> {
  /** The limiter's name. */
  readonly name: string;
  /** Tokens added per second, per key. */
  readonly ratePerSecond: number;
  /** Each bucket's capacity. */
  readonly burst: number;
  /** The most buckets held. */
  readonly maxKeys: number;
  readonly #config: BucketConfig;
  /** Buckets nobody waits on, least recently used first. */
  readonly #idle = new Map<K, TokenBucket>();
  /** Buckets with waiters (never evicted). */
  readonly #busy = new Map<K, TokenBucket>();
  /** The bucket last put at the most recent end of `#idle` (it may have left it since). */
  #newest: TokenBucket | undefined = undefined;
  readonly #owner: BucketOwner = {
    busy: (bucket) => {
      const key = bucket.key as K;
      this.#idle.delete(key);
      this.#busy.set(key, bucket);
    },
    idle: (bucket) => {
      const key = bucket.key as K;
      this.#busy.delete(key);
      this.#idle.set(key, bucket);
      this.#newest = bucket;
    },
  };

  /**
   * @param options - `ratePerSecond` and `maxKeys` (required), `burst`, `name`, `clock`.
   * @throws `TypeError`/`RangeError` (synchronously) for a missing `ratePerSecond` or `maxKeys`, or a bad option.
   */
  constructor(options: KeyedRateLimiterOptions) {
    const config = readConfig('KeyedRateLimiter', options, KEYED_OPTIONS);
    const { maxKeys } = options;
    if (typeof maxKeys !== 'number')
      throw new TypeError(`Expected \`maxKeys\` to be an integer ≥ 1, got ${describe(maxKeys)}`);
    if (!(Number.isSafeInteger(maxKeys) && maxKeys >= 1))
      throw new RangeError(`Expected \`maxKeys\` to be an integer ≥ 1, got ${describe(maxKeys)}`);
    this.#config = config;
    this.name = config.name;
    this.ratePerSecond = config.ratePerMs * 1000;
    this.burst = config.burst;
    this.maxKeys = maxKeys;
  }

  /** Buckets held now (at most `maxKeys`). */
  get size(): number {
    return this.#idle.size + this.#busy.size;
  }

  /**
   * Tokens in `key`'s bucket now (`burst` for a key without a bucket).
   *
   * @param key - The key.
   * @returns The tokens.
   */
  available(key: K): number {
    const bucket = this.#idle.get(key) ?? this.#busy.get(key);
    return bucket === undefined ? this.burst : bucket.tokens(this.#config.clock.now());
  }

  /**
   * Takes `cost` tokens from `key`'s bucket if they are there and nobody is queued on it.
   *
   * @param key - The key (compared as `Map` keys are).
   * @param cost - Tokens to take: a finite number > 0, at most `burst` (default `1`).
   * @returns Whether it took them (`false` too for a new key when every bucket has waiters).
   * @throws `TypeError`/`RangeError` (synchronously) for a bad `cost`.
   */
  tryAcquire(key: K, cost?: number): boolean {
    const tokens = readCost(cost, this.burst);
    const now = this.#config.clock.now();
    const bucket = this.#bucketFor(key, now);
    return bucket !== undefined && bucket.tryTake(tokens, now);
  }

  /**
   * Takes `cost` tokens from `key`'s bucket, waiting for them (FIFO per key) if need be.
   *
   * @param key - The key (compared as `Map` keys are).
   * @param options - `signal`, `cost`, `timeout`.
   * @returns A promise that resolves once the tokens are taken.
   * @throws {@link RateLimitError} (rejection, at once) when the tokens would not be there before the ambient deadline or `timeout`, or when the key is new and every bucket has waiters.
   * @throws the signal's reason (rejection, `===`) when it aborts first; the ambient scope's reason when it ends first.
   * @throws `TypeError`/`RangeError` (synchronously) for a bad option (a `cost` above `burst` included).
   */
  acquire(key: K, options?: RateLimitAcquireOptions): Promise<void> {
    checkAcquire(options, this.burst);
    const signal = options?.signal;
    const scope = ambientScope();
    const exit = earlyExit(signal, scope);
    if (exit !== undefined) return exit;
    const cost = options?.cost ?? 1;
    const bucket = this.#bucketFor(key, this.#config.clock.now());
    if (bucket === undefined) {
      const retryAfterMs = Math.ceil(cost / this.#config.ratePerMs);
      const name = this.name;
      publishRateLimit(name, key, cost, retryAfterMs);
      return rejectedAtCaller(
        createDeferred(
          () =>
            new RateLimitError(`Rate limit "${name}": all ${String(this.maxKeys)} buckets have waiters`, {
              limiterName: name,
              retryAfterMs,
            }),
        ),
      );
    }
    return bucket.acquire(cost, options?.timeout ?? Number.POSITIVE_INFINITY, signal, scope);
  }

  /** `key`'s bucket (marked most recently used), a new one, or `undefined` when there is no room. */
  #bucketFor(key: K, now: number): TokenBucket | undefined {
    const idle = this.#idle;
    let bucket = idle.get(key);
    if (bucket !== undefined) {
      // Moved to the most recent end, unless it is there already (a key used twice in a row).
      if (bucket !== this.#newest) {
        idle.delete(key);
        idle.set(key, bucket);
        this.#newest = bucket;
      }
      return bucket;
    }
    bucket = this.#busy.get(key);
    if (bucket !== undefined) return bucket;
    if (this.size >= this.maxKeys && !this.#evict(now)) return undefined;
    bucket = new TokenBucket(this.#config, now, this.#owner, key);
    idle.set(key, bucket);
    this.#newest = bucket;
    return bucket;
  }

  /** Makes room for one bucket (see the class's comment). Returns `false` when every bucket has waiters. */
  #evict(now: number): boolean {
    const idle = this.#idle;
    let oldest: K | undefined;
    let seen = 0;
    for (const [key, bucket] of idle) {
      if (seen++ === 0) oldest = key;
      if (bucket.isFull(now)) {
        idle.delete(key);
        return true;
      }
      if (seen >= EVICTION_SCAN) break;
    }
    if (seen === 0) return false;
    idle.delete(oldest as K);
    return true;
  }
}
