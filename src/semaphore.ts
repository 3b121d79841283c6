/**
 * `Semaphore`: a FIFO-fair counting semaphore whose waiters honour the
 * ambient deadline and an abort signal, and leave no trace when they give up.
 *
 * @module
 */
import { systemClock, type Clock } from './clock.js';
import { createTimeoutError, rethrowAtCaller } from './errors.js';
import { CancelNode, linkNode } from './internal/cancel-node.js';
import { ambient } from './internal/scope-node.js';
import {
  assertClock,
  assertCount,
  assertDuration,
  assertFunction,
  assertOptions,
  assertSignal,
} from './internal/validate.js';

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
  #owner: Semaphore | undefined;

  constructor(owner: Semaphore) {
    this.#owner = owner;
  }

  get released(): boolean {
    return this.#owner === undefined;
  }

  release(): void {
    const owner = this.#owner;
    if (owner === undefined) return;
    this.#owner = undefined;
    owner._release();
  }

  [Symbol.dispose](): void {
    this.release();
  }
}

/** A queued `acquire`: a node of the semaphore's FIFO list and of the cancellation tree. */
class Waiter extends CancelNode {
  _prev: Waiter | undefined = undefined;
  _next: Waiter | undefined = undefined;
  _queued = false;
  readonly #semaphore: Semaphore;
  readonly #timeoutMs: number;
  readonly #resolve: (permit: Permit) => void;
  readonly #reject: (reason: unknown) => void;

  constructor(
    semaphore: Semaphore,
    clock: Clock,
    timeoutMs: number,
    resolve: (permit: Permit) => void,
    reject: (reason: unknown) => void,
  ) {
    super(clock);
    this.#semaphore = semaphore;
    this.#timeoutMs = timeoutMs;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  /** Hands the waiter a permit: its timer and listeners are gone before it resolves. */
  _grant(permit: Permit): void {
    this._detach();
    this.#resolve(permit);
  }

  _onDeadline(): void {
    this._detach();
    this.#semaphore._dequeue(this);
    this.#reject(createTimeoutError('Semaphore.acquire', this.#timeoutMs));
  }

  _onCancel(reason: unknown): void {
    this.#semaphore._dequeue(this);
    this.#reject(reason);
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
 * ```
 */
export class Semaphore {
  /** The number of permits the semaphore was created with. */
  readonly permits: number;
  #available: number;
  #head: Waiter | undefined = undefined;
  #tail: Waiter | undefined = undefined;
  #waiting = 0;

  /**
   * @param permits - How many holders at once: an integer ≥ 1, or `Infinity`.
   * @throws `TypeError`/`RangeError` (synchronously) for anything else.
   */
  constructor(permits: number) {
    assertCount('permits', permits);
    this.permits = permits;
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
    return new SemaphorePermit(this);
  }

  /**
   * Waits for a permit, first come first served.
   *
   * @param options - `signal`, `timeout`, `clock`.
   * @returns The permit; release it (or dispose it with `using`) when done.
   * @throws the signal's reason (rejection) when `signal` aborts first; the ambient scope's {@link TimeoutError} when its deadline passes first; a {@link TimeoutError} named `'Semaphore.acquire'` at `timeout`.
   * @throws `TypeError`/`RangeError` (synchronously) for a bad option.
   */
  acquire(options?: AcquireOptions): Promise<Permit> {
    assertOptions('acquire', options, ACQUIRE_OPTIONS);
    const timeout = options?.timeout ?? Number.POSITIVE_INFINITY;
    assertDuration('timeout', timeout);
    const signal = options?.signal;
    assertSignal('signal', signal);
    assertClock('clock', options?.clock);
    const parent = ambient.getStore();
    if (signal?.aborted === true) return Promise.reject(signal.reason as Error).then(undefined, rethrowAtCaller);
    if (parent !== undefined) {
      parent._expireIfDue();
      if (parent._aborted) return Promise.reject(parent._reason as Error).then(undefined, rethrowAtCaller);
    }
    const permit = this.tryAcquire();
    if (permit !== undefined) return Promise.resolve(permit);
    const clock = options?.clock ?? parent?._clock ?? systemClock;
    return new Promise<Permit>((resolve, reject) => {
      const waiter = new Waiter(this, clock, timeout, resolve, reject);
      waiter._timerAt = clock.now() + timeout;
      const born = linkNode(waiter, parent, signal);
      if (born !== undefined) reject(born.reason);
      else this.#enqueue(waiter);
    }).then(undefined, rethrowAtCaller);
  }

  /**
   * Runs `fn` while holding a permit, and releases it when `fn` settles.
   *
   * @param fn - The work; may be sync or async.
   * @param options - `signal`, `timeout`, `clock` for the wait (not for `fn`).
   * @returns `fn`'s result.
   * @throws whatever {@link Semaphore.acquire} or `fn` throws (rejection).
   */
  run<T>(fn: () => T | PromiseLike<T>, options?: AcquireOptions): Promise<Awaited<T>> {
    assertFunction('fn', fn);
    return this.acquire(options).then(async (permit): Promise<Awaited<T>> => {
      try {
        return await fn();
      } finally {
        permit.release();
      }
    });
  }

  /** A permit came back: it goes to the longest waiter, or back to the pool. @internal */
  _release(): void {
    const waiter = this.#head;
    if (waiter === undefined) {
      this.#available++;
      return;
    }
    this._dequeue(waiter);
    waiter._grant(new SemaphorePermit(this));
  }

  #enqueue(waiter: Waiter): void {
    waiter._queued = true;
    waiter._prev = this.#tail;
    if (this.#tail === undefined) this.#head = waiter;
    else this.#tail._next = waiter;
    this.#tail = waiter;
    this.#waiting++;
  }

  /** Unlinks a waiter from the queue in O(1). @internal */
  _dequeue(waiter: Waiter): void {
    if (!waiter._queued) return;
    waiter._queued = false;
    const { _prev: prev, _next: next } = waiter;
    if (prev === undefined) this.#head = next;
    else prev._next = next;
    if (next === undefined) this.#tail = prev;
    else next._prev = prev;
    waiter._prev = undefined;
    waiter._next = undefined;
    this.#waiting--;
  }
}
