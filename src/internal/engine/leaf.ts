/**
 * A leaf wait: one pending operation in the cancellation tree (a sleep, a
 * wait for a promise, a queued semaphore acquire). It has no children; it
 * settles once — by its own deadline, by the work it waits for, or by being
 * cancelled — and leaves the tree before its promise settles.
 *
 * @internal
 * @module
 */
import type { Clock } from '../../clock.js';
import { rejectAtCaller, settledElsewhere } from '../stacks.js';
import { CancelNode } from './node.js';

export abstract class LeafWait<T> extends CancelNode {
  /** Settles once: the operation's outcome. */
  readonly promise: Promise<T>;
  #resolve!: (value: T | PromiseLike<T>) => void;
  #reject!: (reason: unknown) => void;
  /** When it started, on its clock. */
  readonly #startedAt: number;
  /** Counts the works it has followed: only the latest one's outcome settles it (see `follow`). */
  #followed = 0;

  /**
   * @param clock - The clock its timeout is measured on.
   * @param scope - The scope it waits in (its parent in the tree).
   * @param signal - An outside signal that cancels it.
   * @param timeoutMs - Its own timeout in ms from now (`Infinity` for none).
   * @param ref - Whether it may keep the process alive.
   */
  constructor(
    clock: Clock,
    scope: CancelNode | undefined,
    signal: AbortSignal | undefined,
    timeoutMs: number,
    ref = true,
  ) {
    const now = clock.now();
    super(clock, scope, signal, now + timeoutMs, ref);
    this.#startedAt = now;
    this.promise = new Promise<T>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  /**
   * Links the wait into the tree. Returns `false` — the promise rejected with
   * the reason — when it is born cancelled (its signal or scope already ended).
   */
  begin(): boolean {
    if (this.attach(this.#startedAt)) return true;
    this.finishOwner();
    rejectAtCaller(this.#resolve, this.#reject, this.reason);
    return false;
  }

  /** Whether it has settled (or been cancelled). */
  get done(): boolean {
    return !this.ownerRunning;
  }

  /**
   * Whether it can still settle with an outcome: not settled, and not
   * cancelled — a cancellation marks every node of a tree before it tells any,
   * and an outcome that comes in between (a permit freed by a scope told
   * first) must not settle a wait that is about to reject with the reason.
   */
  get settleable(): boolean {
    return this.ownerRunning && !this.cancelled;
  }

  /** Fulfils: leaves the tree first. Returns whether it settled (not if it had settled or was cancelled). */
  protected fulfil(value: T): boolean {
    if (!this.settleable) return false;
    this.finishOwner();
    this.#resolve(value);
    return true;
  }

  /** Rejects: leaves the tree first. Returns whether it settled (not if it had settled or was cancelled). */
  protected fail(error: unknown): boolean {
    if (!this.settleable) return false;
    this.finishOwner();
    rejectAtCaller(this.#resolve, this.#reject, error);
    return true;
  }

  /**
   * Settles with `work`'s outcome, through a promise chain rather than a
   * callback: the chain from the work to the promise the caller awaits stays
   * native, so an error thrown by the work keeps the caller's async frames.
   * The wait leaves the tree in the first link, before it settles. Following
   * another work later (a fallback after the deadline) supersedes this one:
   * only the latest work's outcome settles the wait.
   */
  protected follow(work: Promise<T>): void {
    const turn = ++this.#followed;
    work
      .then(
        (value) => {
          // Settled already (cancelled, timed out) or superseded: the late outcome goes no further.
          if (turn !== this.#followed || !this.settleable) return settledElsewhere();
          this.finishOwner();
          return value;
        },
        (error: unknown) => {
          if (turn !== this.#followed || !this.settleable) return settledElsewhere();
          this.finishOwner();
          throw error;
        },
      )
      .then(this.#resolve, this.#reject);
  }

  /** What the wait does when it is cancelled, before it rejects with the reason (e.g. leave a queue). */
  protected withdraw(_reason: unknown): void {
    // Nothing by default.
  }

  protected onCancelled(reason: unknown): void {
    if (!this.ownerRunning) return;
    this.finishOwner();
    this.withdraw(reason);
    rejectAtCaller(this.#resolve, this.#reject, reason);
  }
}
