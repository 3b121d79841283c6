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
import type { Clock } from '../clock.js';
import { GatherError } from '../errors.js';
import { enterScope, openChild, type ScopeNode } from './engine/index.js';
import { runSoon } from './platform.js';
import { createDeferred, rejectAtCaller } from './stacks.js';

/**
 * The reason the losers are aborted with, one per contest name: a race with a
 * pending loser aborts one on every call, and a `DOMException` costs more to
 * make than the rest of the race. Names are few (a call site's literal);
 * past {@link MAX_CACHED_REASONS} of them, each contest makes its own.
 */
const lostReasons = /* @__PURE__ */ new Map<string, DOMException>();
const MAX_CACHED_REASONS = 256;
/** Entrant names are kept for the first few indexes of a contest name (a race of a million tasks keeps 64). */
const MAX_CACHED_NAMES = 64;

function lostReason(name: string): DOMException {
  let reason = lostReasons.get(name);
  if (reason === undefined) {
    // Made without a stack, and never given one (it is shared: no one call's frames are its own); the
    // losers need its name and message.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      reason = new DOMException(`${name} was cancelled: another task won`, 'AbortError');
    } finally {
      Error.stackTraceLimit = limit;
    }
    if (lostReasons.size < MAX_CACHED_REASONS) lostReasons.set(name, reason);
  }
  return reason;
}

/**
 * Contests whose losers were aborted this macrotask: the losers still running
 * then are listed. A contest whose losers all settled meanwhile (most do,
 * within microtasks) clears its slot, so the batch holds no garbage.
 */
let aborted: (Contest<unknown> | undefined)[] = [];
/** Counts the batches: a contest's slot is only its own in the batch it joined. */
let batch = 0;

function listStuckLosers(): void {
  const contests = aborted;
  aborted = [];
  batch++;
  for (const contest of contests) contest?.listStillRunning();
}

/** The entrant names of each contest name: a template string per entrant per call is garbage. */
const namesByContest = /* @__PURE__ */ new Map<string, string[]>();

function entrantNames(name: string): string[] {
  let names = namesByContest.get(name);
  if (names === undefined) {
    names = [];
    if (namesByContest.size < MAX_CACHED_REASONS) namesByContest.set(name, names);
  }
  return names;
}

export abstract class Contest<T> {
  /**
   * The contest's scope; `undefined` when nothing could cancel the contest (no
   * timeout, no signal, no enclosing scope: a race opens none, and its
   * entrants' scopes are roots).
   */
  readonly #scope: ScopeNode | undefined;
  /** The entrants' clock when the contest has no scope to inherit one from. */
  readonly #clock: Clock | undefined;
  /** Its name, and its entrants' names' stem. */
  readonly name: string;
  /** The names of its entrants, made once per name (`name[0]`, `name[1]`, …). */
  readonly #names: string[];
  readonly promise: Promise<T>;
  #resolve!: (value: T) => void;
  #reject!: (reason: unknown) => void;
  /** The scope of each entrant still running, by index (`undefined` once it settled). */
  readonly #running: (ScopeNode | undefined)[] = [];
  /** Entrants running. */
  #active = 0;
  /** Its slot in the batch `#batch` of `aborted` while losers it aborted still run; -1 when none. */
  #slot = -1;
  #batch = 0;
  /** The scopes that list losers still running a macrotask after they were aborted, by index. */
  #zombies: (ScopeNode | undefined)[] | undefined = undefined;
  /** The failures so far, in the order they happened. */
  #errors: unknown[] | undefined = undefined;
  /** Decided: won, all failed, or cancelled from outside. Every later outcome is absorbed. */
  done = false;

  constructor(scope: ScopeNode | undefined, name: string, clock?: Clock) {
    this.#scope = scope;
    this.#clock = clock;
    this.name = name;
    this.#names = entrantNames(name);
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
    const scope = this.#scope;
    if (scope === undefined) return true;
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
    const names = this.#names;
    let name = names[index];
    if (name === undefined) {
      name = `${this.name}[${String(index)}]`;
      if (index < MAX_CACHED_NAMES) names[index] = name;
    }
    const child = openChild(this.#scope, { name, clock: this.#clock });
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
      this.#fulfilled(index, child, result);
      return;
    }
    result.then(
      (value: T) => {
        this.#settled(index, child);
        this.#fulfilled(index, child, value);
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
    if (this.#slot !== -1 && this.#active === 0) {
      // Every loser settled: nothing to list; the batch lets go of the contest.
      if (this.#batch === batch) aborted[this.#slot] = undefined;
      this.#slot = -1;
    }
    const zombies = this.#zombies;
    if (zombies === undefined) return;
    zombies[index]?.exit();
    zombies[index] = undefined;
  }

  /**
   * Gives each loser that ignored its signal a cancelled scope of its own name
   * under its own (cancelled) one, so `pendingScopes()` and the stall watchdog
   * list it until it settles — as a gather lists its tasks.
   */
  listStillRunning(): void {
    this.#slot = -1;
    const running = this.#running;
    for (let i = 0; i < running.length; i++) {
      const loser = running[i];
      if (loser === undefined) continue;
      // Born cancelled (its parent is): listed as overdue, held weakly, left when the loser settles.
      (this.#zombies ??= [])[i] = openChild(loser, { name: loser.name });
    }
  }

  /**
   * An entrant fulfilled. One whose own scope was cancelled while it ran (it
   * cancelled `currentScope()`) failed with that reason, as a scope's owner
   * does in `runScoped`: a cancelled entrant never wins.
   */
  #fulfilled(index: number, child: ScopeNode, value: T): void {
    if (child.cancelled) this.#failed(child.reason);
    else this.#won(index, value);
  }

  #won(index: number, value: T): void {
    if (this.done) return;
    this.done = true;
    this.onDone();
    const running = this.#running;
    let losers = 0;
    if (this.#active > 0) {
      const reason = lostReason(this.name);
      for (let i = 0; i < running.length; i++) {
        const loser = running[i];
        if (loser === undefined) continue;
        losers++;
        // Its owner is not waited for: the scope is left first, so the cancellation does not hold it in
        // the registry (most losers settle within microtasks of the abort); one that is still running a
        // macrotask later is listed then (`listStillRunning`).
        loser.exit();
        loser.cancel(reason);
      }
      this.#batch = batch;
      this.#slot = aborted.push(this as Contest<unknown>) - 1;
      if (this.#slot === 0) runSoon(listStuckLosers);
    }
    this.onWin(index, losers);
    this.#scope?.exit();
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
    this.#scope?.exit();
    // At least one entrant started (a contest born cancelled rejects with the reason), and each one failed.
    const errors = this.#errors as unknown[];
    const error = createDeferred(() => new GatherError(errors));
    rejectAtCaller(this.#resolve, this.#reject, error);
  }

  /** The contest's scope was cancelled from outside (caller signal, own timeout, enclosing scope). */
  #stopped(reason: unknown): void {
    if (this.done) return;
    this.done = true;
    this.onDone();
    // The entrants' scopes are children of this one: the cancellation reached them first.
    this.#scope?.exit();
    rejectAtCaller(this.#resolve, this.#reject, reason);
  }
}
