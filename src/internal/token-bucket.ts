/**
 * One token bucket with a FIFO queue of waiters: the core of `RateLimiter`
 * and of each key of `KeyedRateLimiter`.
 *
 * Tokens are refilled lazily, from the clock, whenever the bucket is used; no
 * timer runs while nobody waits. While someone waits, exactly one clock timer
 * is armed: for the moment the head of the queue can be served. Tokens are
 * taken only when a waiter is served, so a waiter that leaves (its signal, its
 * scope) takes nothing with it and leaves no trace.
 *
 * @internal
 * @module
 */
import { MAX_TIMER_DELAY_MS, type Clock } from '../clock.js';
import { RateLimitError } from '../errors.js';
import { LeafWait, type ScopeNode } from './engine/index.js';
import { publishRateLimit } from './publish.js';
import { createDeferred, rejectedAtCaller } from './stacks.js';

/** What every bucket of one limiter shares. */
export interface BucketConfig {
  readonly name: string;
  /** Tokens per millisecond. */
  readonly ratePerMs: number;
  /** Capacity, and the tokens a new bucket starts with. */
  readonly burst: number;
  readonly clock: Clock;
}

/** What a keyed limiter is told when a bucket gets its first waiter, and loses its last. */
export interface BucketOwner {
  busy(bucket: TokenBucket): void;
  idle(bucket: TokenBucket): void;
}

/** Floating-point slack when comparing tokens with a cost (refills are products of fractions). */
const EPSILON = 1e-9;

/** One settled `acquire`, shared: it resolves to nothing, so every caller can await the same promise. */
const GRANTED: Promise<void> = /* @__PURE__ */ Promise.resolve();

/** A queued `acquire`: a node of the bucket's FIFO list and a leaf of the cancellation tree. */
class TokenWaiter extends LeafWait<void> {
  prev: TokenWaiter | undefined = undefined;
  next: TokenWaiter | undefined = undefined;
  queued = false;
  readonly cost: number;
  readonly #bucket: TokenBucket;

  constructor(
    bucket: TokenBucket,
    clock: Clock,
    scope: ScopeNode | undefined,
    signal: AbortSignal | undefined,
    cost: number,
  ) {
    // No deadline of its own: the wait was checked to fit the deadline, and the tree bounds it anyway.
    super(clock, scope, signal, Number.POSITIVE_INFINITY);
    this.#bucket = bucket;
    this.cost = cost;
  }

  grant(): void {
    this.fulfil(undefined);
  }

  protected onDeadline(): void {
    // None of its own.
  }

  protected override withdraw(): void {
    this.#bucket.leave(this);
  }
}

export class TokenBucket {
  /** Tokens as of `#updatedAt`; never above `burst`. */
  #tokens: number;
  /** The time the tokens were last refilled to, on the clock; never goes back. */
  #updatedAt: number;
  #head: TokenWaiter | undefined = undefined;
  #tail: TokenWaiter | undefined = undefined;
  /** Waiters queued. */
  waiting = 0;
  /** The sum of the queued waiters' costs. */
  #queuedCost = 0;
  /** The armed clock timer (for the head of the queue), and the time it stands for. */
  #timer: unknown = undefined;
  #timerAt = 0;
  #armed = false;

  readonly #config: BucketConfig;
  readonly #owner: BucketOwner | undefined;
  /** The key, for a keyed limiter (in its diagnostics). */
  readonly key: unknown;

  readonly #onTimer = (): void => {
    this.#armed = false;
    this.#timer = undefined;
    // A timer that fires means its time has come, even if `now()` reads a little earlier.
    this.#serve(Math.max(this.#config.clock.now(), this.#timerAt));
  };

  constructor(config: BucketConfig, now: number, owner?: BucketOwner, key?: unknown) {
    this.#config = config;
    this.#tokens = config.burst;
    this.#updatedAt = now;
    this.#owner = owner;
    this.key = key;
  }

  /** The tokens now (refilled from the clock). */
  tokens(now: number): number {
    this.#refill(now);
    return this.#tokens;
  }

  /** Whether nobody waits and the bucket has refilled to `burst`: then it is the same as a new one. */
  isFull(now: number): boolean {
    return this.#head === undefined && this.tokens(now) >= this.#config.burst - EPSILON;
  }

  /** Takes `cost` tokens if nobody is queued and they are there. */
  tryTake(cost: number, now: number): boolean {
    if (this.#head !== undefined) return false;
    this.#refill(now);
    if (this.#tokens + EPSILON < cost) return false;
    this.#tokens = Math.max(0, this.#tokens - cost);
    return true;
  }

  /**
   * Takes `cost` tokens now, or queues for them — or rejects at once with a
   * `RateLimitError` when they would not be there before `timeout` ms, or
   * before the ambient scope's deadline.
   */
  acquire(cost: number, timeout: number, signal: AbortSignal | undefined, scope: ScopeNode | undefined): Promise<void> {
    const clock = this.#config.clock;
    const now = clock.now();
    if (this.tryTake(cost, now)) return GRANTED;
    this.#refill(now);
    const waitMs = Math.ceil(Math.max(0, this.#queuedCost + cost - this.#tokens) / this.#config.ratePerMs);
    if (waitMs >= timeout || (scope !== undefined && waitMs >= scope.remaining())) {
      const { name } = this.#config;
      const key = this.key;
      publishRateLimit(name, key, cost, waitMs);
      return rejectedAtCaller(
        createDeferred(() => new RateLimitError(undefined, { limiterName: name, retryAfterMs: waitMs })),
      );
    }
    const waiter = new TokenWaiter(this, clock, scope, signal, cost);
    if (waiter.begin()) this.#enqueue(waiter, now);
    return waiter.promise;
  }

  /** A waiter gave up: it leaves the queue; if it was the head, the next may be served now. */
  leave(waiter: TokenWaiter): void {
    if (!waiter.queued) return;
    const wasHead = waiter === this.#head;
    this.#dequeue(waiter);
    if (wasHead) this.#serve(this.#config.clock.now());
  }

  #refill(now: number): void {
    const elapsed = now - this.#updatedAt;
    if (!(elapsed > 0)) return;
    this.#updatedAt = now;
    const { burst } = this.#config;
    if (this.#tokens >= burst) return;
    this.#tokens = Math.min(burst, this.#tokens + elapsed * this.#config.ratePerMs);
  }

  /** Serves the queue's head while its tokens are there, then arms the timer for the next one. */
  #serve(now: number): void {
    this.#refill(now);
    for (let waiter = this.#head; waiter !== undefined; waiter = this.#head) {
      // A waiter whose tree is being cancelled (marked, not yet told) is passed over: it leaves the queue.
      if (!waiter.settleable) {
        this.#dequeue(waiter);
        continue;
      }
      if (this.#tokens + EPSILON < waiter.cost) break;
      this.#tokens = Math.max(0, this.#tokens - waiter.cost);
      this.#dequeue(waiter);
      waiter.grant();
    }
    this.#arm(now);
  }

  /** Arms the one timer for the head of the queue (or clears it when nobody waits). */
  #arm(now: number): void {
    const clock = this.#config.clock;
    if (this.#armed) {
      this.#armed = false;
      clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const head = this.#head;
    if (head === undefined) return;
    const delay = Math.min(
      MAX_TIMER_DELAY_MS,
      Math.max(1, Math.ceil((head.cost - this.#tokens) / this.#config.ratePerMs)),
    );
    this.#timerAt = now + delay;
    this.#armed = true;
    this.#timer = clock.setTimeout(this.#onTimer, delay);
  }

  #enqueue(waiter: TokenWaiter, now: number): void {
    waiter.queued = true;
    waiter.prev = this.#tail;
    if (this.#tail === undefined) this.#head = waiter;
    else this.#tail.next = waiter;
    this.#tail = waiter;
    this.#queuedCost += waiter.cost;
    if (this.waiting++ === 0) {
      this.#owner?.busy(this);
      this.#arm(now);
    }
  }

  /** Unlinks a waiter in O(1); the timer is the caller's business. */
  #dequeue(waiter: TokenWaiter): void {
    if (!waiter.queued) return;
    waiter.queued = false;
    const { prev, next } = waiter;
    if (prev === undefined) this.#head = next;
    else prev.next = next;
    if (next === undefined) this.#tail = prev;
    else next.prev = prev;
    waiter.prev = undefined;
    waiter.next = undefined;
    this.#queuedCost -= waiter.cost;
    if (--this.waiting === 0) {
      this.#queuedCost = 0;
      if (this.#armed) {
        this.#armed = false;
        this.#config.clock.clearTimeout(this.#timer);
        this.#timer = undefined;
      }
      this.#owner?.idle(this);
    }
  }
}
