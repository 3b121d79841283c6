/**
 * `Semaphore`: a FIFO-fair counting semaphore whose waiters honour the
 * ambient deadline and an abort signal, and leave no trace when they give up.
 *
 * @module
 */
import type { Clock } from './clock.js';
import { ambientScope, clockFor, LeafWait, openScope, runScoped, type ScopeNode } from './internal/engine/index.js';
import { QueueFullError } from './errors.js';
import { newTimeoutError } from './internal/engine/timeout-error.js';
import { publishQueueFull, publishTimeout } from './internal/publish.js';
import { createDeferred, rejectedAtCaller } from './internal/stacks.js';
import {
  assertClock,
  assertCount,
  assertDuration,
  assertFunction,
  assertOptionalString,
  assertOptions,
  assertQueueLimit,
  assertSignal,
} from './internal/validate.js';

/**
 * Options for {@link Semaphore} (and {@link Mutex}).
 *
 * @category Primitives
 */
export interface SemaphoreOptions {
  /**
   * Names the semaphore in its errors: a {@link QueueFullError}'s `semaphoreName`, the
   * {@link TimeoutError} of an `acquire` timeout (its `scopeName`), and `run`'s scope.
   * @defaultValue none: `'Semaphore'` in a {@link QueueFullError}, `'Semaphore.acquire'` / `'Semaphore.run'` in scopes
   */
  name?: string | undefined;
  /**
   * The most callers that may wait for a permit: an integer ≥ 0, or `Infinity`. With that many
   * waiting, `acquire()` (and `run()`) rejects at once with a {@link QueueFullError} — a bulkhead.
   * `0`: no queue, a caller gets a free permit or is turned away.
   * @defaultValue `Infinity`
   */
  maxQueue?: number | undefined;
}

const SEMAPHORE_OPTIONS = new Set(['name', 'maxQueue']);

/**
 * Options for {@link Semaphore.acquire} and {@link Semaphore.run}.
 *
 * @category Primitives
 */
export interface AcquireOptions {
  /** Gives up waiting when it aborts; the acquire rejects with the signal's reason (`===`). */
  signal?: AbortSignal | undefined;
  /**
   * The most milliseconds to wait for a permit (the ambient deadline bounds it too).
   * @defaultValue `Infinity`
   */
  timeout?: number | undefined;
  /** @defaultValue the ambient scope's clock, else {@link systemClock} */
  clock?: Clock | undefined;
}

/**
 * A held permit of a {@link Semaphore}. Release it exactly once — calling
 * `release()` again (or disposing it after releasing) does nothing.
 *
 * @category Primitives
 */
export interface Permit extends Disposable {
  /** Returns the permit to the semaphore (to the longest waiter, if any). Idempotent. */
  release(): void;
  /** `true` once released. */
  readonly released: boolean;
}

const ACQUIRE_OPTIONS = new Set(['signal', 'timeout', 'clock']);

class SemaphorePermit implements Permit {
  /** Gives the permit back to its semaphore; `undefined` once released. */
  #giveBack: (() => void) | undefined;

  constructor(giveBack: () => void) {
    this.#giveBack = giveBack;
  }

  get released(): boolean {
    return this.#giveBack === undefined;
  }

  release(): void {
    const giveBack = this.#giveBack;
    if (giveBack === undefined) return;
    this.#giveBack = undefined;
    giveBack();
  }

  [Symbol.dispose](): void {
    this.release();
  }
}

/** A queued `acquire`: a node of the semaphore's FIFO list and a leaf of the cancellation tree. */
class Waiter extends LeafWait<Permit> {
  prev: Waiter | undefined = undefined;
  next: Waiter | undefined = undefined;
  queued = false;
  /** Takes the waiter out of its semaphore's queue. */
  readonly #leaveQueue: (waiter: Waiter) => void;
  readonly #timeoutMs: number;
  /** The name its timeout's TimeoutError carries. */
  readonly #name: string;

  constructor(
    leaveQueue: (waiter: Waiter) => void,
    clock: Clock,
    scope: ScopeNode | undefined,
    signal: AbortSignal | undefined,
    timeoutMs: number,
    name: string,
  ) {
    super(clock, scope, signal, timeoutMs);
    this.#leaveQueue = leaveQueue;
    this.#timeoutMs = timeoutMs;
    this.#name = name;
  }

  /** Hands the waiter a permit: its timer and listeners are gone before it resolves. */
  grant(permit: Permit): void {
    this.fulfil(permit);
  }

  protected onDeadline(): void {
    this.#leaveQueue(this);
    const error = newTimeoutError(this.#name, this.#timeoutMs);
    publishTimeout(this.#name, this.#timeoutMs, error, undefined);
    this.fail(error);
  }

  protected override withdraw(): void {
    this.#leaveQueue(this);
  }
}

/**
 * A counting semaphore: at most `permits` holders at once, waiters served in
 * FIFO order.
 *
 * - A released permit goes straight to the longest waiter, so a newcomer's
 *   `tryAcquire()` can never overtake the queue.
 * - A waiter gives up when its `signal` aborts (rejecting with the reason,
 *   `===`), at its `timeout`, or at the ambient deadline (rejecting with that
 *   scope's {@link TimeoutError}); it leaves the queue at once, in O(1), with
 *   its timer cleared and no listener left behind.
 * - The code after `await semaphore.acquire()` runs in the async context of
 *   the code that waited (its ambient scope, its AsyncLocalStorage stores),
 *   not of the code that released.
 * - A bulkhead with `maxQueue`: once that many callers wait, `acquire()` and
 *   `run()` reject at once with a {@link QueueFullError} (published on
 *   `loopsafe:queue-full`) instead of queueing without bound; `name` names the
 *   semaphore in its errors.
 *
 * @category Primitives
 * @example
 * ```ts
 * import { Semaphore, safeSleep } from 'loopsafe';
 *
 * const connections = new Semaphore(2);
 * let inUse = 0;
 * let peak = 0;
 * await Promise.all([1, 2, 3, 4, 5].map((n) => connections.run(async () => {
 *   peak = Math.max(peak, ++inUse);
 *   await safeSleep(5);
 *   inUse--;
 *   return n;
 * })));
 * console.log(peak); // 2
 *
 * {
 *   using permit = await connections.acquire({ timeout: 100 });
 *   console.log(connections.available, permit.released); // 1 false
 * } // released here
 * console.log(connections.available); // 2
 *
 * // A bulkhead: 2 running, at most 1 waiting, the rest turned away at once.
 * const bulkhead = new Semaphore(2, { name: 'payments', maxQueue: 1 });
 * const calls = [1, 2, 3, 4].map(() => bulkhead.run(() => safeSleep(5)).then(() => 'ok', (e: Error) => e.name));
 * console.log(await Promise.all(calls)); // ['ok', 'ok', 'ok', 'QueueFullError']
 * ```
 */
export class Semaphore {
  /** The number of permits the semaphore was created with. */
  readonly permits: number;
  /** Its name, if it was given one. */
  readonly name: string | undefined;
  /** The most callers that may wait for a permit (`Infinity`: no limit). */
  readonly maxQueue: number;
  #available: number;
  #head: Waiter | undefined = undefined;
  #tail: Waiter | undefined = undefined;
  #waiting = 0;

  /** What permits and waiters are handed: the semaphore's own operations, made once. */
  readonly #giveBack = (): void => {
    this.#release();
  };
  readonly #leaveQueue = (waiter: Waiter): void => {
    this.#dequeue(waiter);
  };

  /**
   * @param permits - How many holders at once: an integer ≥ 1, or `Infinity`.
   * @param options - `name`, `maxQueue`.
   * @throws `TypeError`/`RangeError` (synchronously) for a bad `permits` or option.
   */
  constructor(permits: number, options?: SemaphoreOptions) {
    assertCount('permits', permits);
    assertOptions('Semaphore', options, SEMAPHORE_OPTIONS);
    const maxQueue = options?.maxQueue === undefined ? Number.POSITIVE_INFINITY : options.maxQueue;
    assertQueueLimit('maxQueue', maxQueue);
    const name = options?.name;
    assertOptionalString('name', name);
    this.permits = permits;
    this.name = name;
    this.maxQueue = maxQueue;
    this.#available = permits;
  }

  /** Permits free right now. */
  get available(): number {
    return this.#available;
  }

  /** Callers queued in `acquire()`. */
  get waiting(): number {
    return this.#waiting;
  }

  /**
   * Takes a permit if one is free and nobody is queued, without waiting.
   *
   * @returns The permit, or `undefined` when none is free.
   */
  tryAcquire(): Permit | undefined {
    // Invariant: a released permit goes straight to a waiter, so permits are free only when nobody waits.
    if (this.#available < 1) return undefined;
    this.#available--;
    return new SemaphorePermit(this.#giveBack);
  }

  /**
   * Waits for a permit, first come first served.
   *
   * @param options - `signal`, `timeout`, `clock`.
   * @returns The permit; release it (or dispose it with `using`) when done.
   * @throws {@link QueueFullError} (rejection, at once) when no permit is free and `maxQueue` callers already wait (published on `loopsafe:queue-full`).
   * @throws the signal's reason (rejection) when `signal` aborts first; the ambient scope's {@link TimeoutError} when its deadline passes first; a {@link TimeoutError} named after the semaphore (default `'Semaphore.acquire'`) at `timeout` (published on `loopsafe:timeout`).
   * @throws `TypeError`/`RangeError` (synchronously) for a bad option.
   */
  acquire(options?: AcquireOptions): Promise<Permit> {
    assertOptions('acquire', options, ACQUIRE_OPTIONS);
    const timeout = options?.timeout === undefined ? Number.POSITIVE_INFINITY : options.timeout;
    assertDuration('timeout', timeout);
    const signal = options?.signal;
    assertSignal('signal', signal);
    assertClock('clock', options?.clock);
    if (signal?.aborted === true) return rejectedAtCaller(signal.reason);
    const scope = ambientScope();
    if (scope !== undefined) {
      // A free permit is no reason to go on past the deadline or after a cancellation.
      try {
        scope.check();
      } catch (reason) {
        return Promise.reject(reason);
      }
    }
    const permit = this.tryAcquire();
    if (permit !== undefined) return Promise.resolve(permit);
    if (this.#waiting >= this.maxQueue) return this.#full();
    const waiter = new Waiter(
      this.#leaveQueue,
      clockFor(options?.clock, scope),
      scope,
      signal,
      timeout,
      this.name ?? 'Semaphore.acquire',
    );
    if (waiter.begin()) this.#enqueue(waiter);
    return waiter.promise;
  }

  /**
   * Runs `fn` while holding a permit, and releases it when `fn`'s work
   * settles. `fn` runs in a child scope of the ambient one, named
   * `'Semaphore.run'`: at the enclosing deadline the caller is released with
   * its TimeoutError even if `fn` ignores its signal, but the permit stays held
   * until `fn`'s work really settles — the limit bounds the work that is
   * running — and `watchStalls` reports it meanwhile.
   *
   * @param fn - The work; may be sync or async.
   * @param options - `signal`, `timeout`, `clock` for the wait (not for `fn`).
   * @returns `fn`'s result.
   * @throws whatever {@link Semaphore.acquire} or `fn` throws; the ambient scope's reason when it ends first (rejection).
   */
  run<T>(fn: () => T | PromiseLike<T>, options?: AcquireOptions): Promise<Awaited<T>> {
    assertFunction('fn', fn);
    return this.acquire(options).then((permit) => {
      const scope = openScope({ name: this.name ?? 'Semaphore.run', named: this.name !== undefined });
      if (scope.cancelled) permit.release();
      return runScoped(scope, async (): Promise<Awaited<T>> => {
        try {
          return await fn();
        } finally {
          permit.release();
        }
      });
    });
  }

  /** The queue is full: turned away at once, made without a stack (taken where the caller awaits). */
  #full(): Promise<never> {
    const name = this.name ?? 'Semaphore';
    const maxQueue = this.maxQueue;
    const error = createDeferred(() => new QueueFullError(name, maxQueue));
    publishQueueFull(name, maxQueue, error);
    return rejectedAtCaller(error);
  }

  /** A permit came back: it goes to the longest waiter, or back to the pool. */
  #release(): void {
    // A waiter that was cancelled but not yet told (its tree is being cancelled) is passed over: it leaves the queue.
    for (let waiter = this.#head; waiter !== undefined; waiter = this.#head) {
      this.#dequeue(waiter);
      if (!waiter.settleable) continue;
      waiter.grant(new SemaphorePermit(this.#giveBack));
      return;
    }
    this.#available++;
  }

  #enqueue(waiter: Waiter): void {
    waiter.queued = true;
    waiter.prev = this.#tail;
    if (this.#tail === undefined) this.#head = waiter;
    else this.#tail.next = waiter;
    this.#tail = waiter;
    this.#waiting++;
  }

  /** Unlinks a waiter from the queue in O(1). */
  #dequeue(waiter: Waiter): void {
    if (!waiter.queued) return;
    waiter.queued = false;
    const { prev, next } = waiter;
    if (prev === undefined) this.#head = next;
    else prev.next = next;
    if (next === undefined) this.#tail = prev;
    else next.prev = prev;
    waiter.prev = undefined;
    waiter.next = undefined;
    this.#waiting--;
  }
}
