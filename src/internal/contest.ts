/**
 * A contest: entrants that run side by side in child scopes of one scope; the
 * first to fulfil wins and every other is cancelled; when every entrant has
 * failed and no other will start, it rejects with a `GatherError` of their
 * failures, in the order they happened. `safeRace` enters every entrant at
 * once; `hedge` enters them over time.
 *
 * Each entrant runs in a child scope of its own, named `` `${name}[i]` ``:
 * its signal is that scope's, so a loser's nested loopsafe calls stop with it
 * even when they were not handed the signal, while the winner's scope is only
 * left (never aborted): a stream it returned stays readable. A loser that
 * ignores its signal is listed by `pendingScopes()` and the stall watchdog
 * until it settles; its late outcome is absorbed.
 *
 * @internal
 * @module
 */
import { GatherError } from '../errors.js';
import { enterScope, openChild, type ScopeNode } from './engine/index.js';
import { createDeferred, rejectAtCaller } from './stacks.js';

export abstract class Contest<T> {
  readonly scope: ScopeNode;
  readonly promise: Promise<T>;
  #resolve!: (value: T) => void;
  #reject!: (reason: unknown) => void;
  /** The scope of each entrant still running, by index (`undefined` once it settled). */
  readonly #running: (ScopeNode | undefined)[] = [];
  /** Entrants running. */
  #active = 0;
  /** The failures so far, in the order they happened. */
  #errors: unknown[] | undefined = undefined;
  /** Decided: won, all failed, or cancelled from outside. Every later outcome is absorbed. */
  done = false;

  constructor(scope: ScopeNode) {
    this.scope = scope;
    this.promise = new Promise<T>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  /**
   * Follows the scope's cancellation. Returns `false` — the contest rejected
   * with the reason — when the scope was born cancelled (an aborted signal, a
   * cancelled or expired enclosing scope).
   */
  protected begin(): boolean {
    const scope = this.scope;
    if (scope.cancelled) {
      this.#stopped(scope.reason);
      return false;
    }
    scope.onAbort((reason) => {
      this.#stopped(reason);
    });
    return true;
  }

  /** Entrants running now. */
  get active(): number {
    return this.#active;
  }

  /** Whether no further entrant will start: then the last failure ends the contest. */
  protected abstract get closed(): boolean;

  /** An entrant failed and the contest goes on (hedge starts the next attempt at once). */
  protected onFailure(): void {
    // Nothing by default.
  }

  /** The contest was decided: stop whatever would start more entrants (hedge's delay). */
  protected onDone(): void {
    // Nothing by default.
  }

  /** What the winner's index is published as, with the number of losers aborted. */
  protected abstract onWin(index: number, aborted: number): void;

  /**
   * Runs `fn(signal)` as entrant `index`, in a child scope of its own that is
   * ambient while it runs. A synchronous outcome is recorded at once.
   */
  enter(index: number, fn: (signal: AbortSignal) => T | PromiseLike<T>): void {
    const scope = this.scope;
    const child = openChild(scope, { name: `${scope.name}[${String(index)}]` });
    this.#running[index] = child;
    this.#active++;
    let result: T | Promise<T>;
    try {
      result = enterScope(child, fn, child.signal);
    } catch (error) {
      this.#settled(index, child);
      this.#failed(error);
      return;
    }
    if (!(result instanceof Promise)) {
      this.#settled(index, child);
      this.#won(index, result);
      return;
    }
    result.then(
      (value: T) => {
        this.#settled(index, child);
        this.#won(index, value);
      },
      (error: unknown) => {
        this.#settled(index, child);
        this.#failed(error);
      },
    );
  }

  #settled(index: number, child: ScopeNode): void {
    this.#running[index] = undefined;
    this.#active--;
    child.exit();
  }

  #won(index: number, value: T): void {
    if (this.done) return;
    this.done = true;
    this.onDone();
    const running = this.#running;
    let aborted = 0;
    if (this.#active > 0) {
      const scope = this.scope;
      // Made once, without a stack (it would only show this line): the losers need its name and message.
      const reason = createDeferred(
        () => new DOMException(`${scope.name} was cancelled: another task won`, 'AbortError'),
      );
      for (let i = 0; i < running.length; i++) {
        const loser = running[i];
        if (loser === undefined) continue;
        aborted++;
        loser.cancel(reason);
      }
    }
    this.onWin(index, aborted);
    this.scope.exit();
    this.#resolve(value);
  }

  #failed(error: unknown): void {
    if (this.done) return;
    (this.#errors ??= []).push(error);
    if (this.#active === 0 && this.closed) {
      this.#allFailed();
      return;
    }
    this.onFailure();
  }

  #allFailed(): void {
    this.done = true;
    this.onDone();
    this.scope.exit();
    // At least one entrant started (a contest born cancelled rejects with the reason), and each one failed.
    const errors = this.#errors as unknown[];
    const error = createDeferred(() => new GatherError(errors));
    rejectAtCaller(this.#resolve as (value: never) => void, this.#reject, error);
  }

  /** The contest's scope was cancelled from outside (caller signal, own timeout, enclosing scope). */
  #stopped(reason: unknown): void {
    if (this.done) return;
    this.done = true;
    this.onDone();
    // The entrants' scopes are children of this one: the cancellation reached them first.
    this.scope.exit();
    rejectAtCaller(this.#resolve as (value: never) => void, this.#reject, reason);
  }
}
