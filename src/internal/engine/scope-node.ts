/**
 * A scope: a node of the cancellation tree with an owner (the function that
 * runs in it, a `using` block, a gather), a name, a lazily made
 * `AbortSignal`, and a place in the registry of open scopes that
 * `pendingScopes()` and the stall watchdog read.
 *
 * @internal
 * @module
 */
import type { Clock } from '../../clock.js';
import type { TimeoutError } from '../../errors.js';
import type { Scope as PublicScope } from '../../scope.js';
import { publishTimeout } from '../publish.js';
import { runSoon } from '../platform.js';
import { rejectAtCaller, takeStack } from '../stacks.js';
import { CancelNode } from './node.js';
import { newTimeoutError } from './timeout-error.js';

/** Makes the error a scope is cancelled with when its own deadline passes (see the constructor). */
export type TimeoutErrorFactory = (scope: ScopeNode) => TimeoutError;

/** Whether new scopes record where they were opened (a stack capture per scope). */
let captureStacks = false;

/** Turns stack capture for new scopes on or off; returns the previous setting. */
export function setStackCapture(enabled: boolean): boolean {
  const previous = captureStacks;
  captureStacks = enabled;
  return previous;
}

/** What a scope's owner is told when the scope is cancelled while it runs. */
export type AbortHook = (reason: unknown) => void;

/**
 * Scopes print as `Scope { name, remainingMs, state }`. The custom inspector is
 * put on the prototype when the first scope opens, not in the class body: a
 * computed method key is a side effect to a bundler, which would then keep the
 * whole class in every bundle (a `safeSleep`-only one included).
 */
let inspectable = false;
function makeInspectable(): void {
  inspectable = true;
  Object.defineProperty(ScopeNode.prototype, Symbol.for('nodejs.util.inspect.custom'), {
    value(this: ScopeNode): object {
      return this.describe();
    },
    configurable: true,
    writable: true,
  });
}

export class ScopeNode extends CancelNode implements PublicScope {
  readonly #name: string;
  readonly #parentScope: ScopeNode | undefined;
  readonly #createdAt: number;
  readonly #timeoutMs: number;
  readonly #timeoutError: TimeoutErrorFactory | undefined;
  readonly #named: boolean;
  /** Where the scope was opened, when stack capture is on (formatted lazily by V8). */
  #origin: { readonly stack?: string } | undefined = undefined;
  #controller: AbortController | undefined = undefined;
  /** Told once when the scope is cancelled while its owner runs. */
  #onAbort: AbortHook | undefined = undefined;
  /** The promise of a `runScoped` owner, rejected when the scope is cancelled while it runs. */
  #resolveOwner: ((value: never) => void) | undefined = undefined;
  #rejectOwner: ((reason: unknown) => void) | undefined = undefined;
  /** The owner's outcome was decided by a cancellation: what it does later is absorbed. */
  #decided = false;
  /** Only a `timeoutContext` is closed by `[Symbol.dispose]`. */
  #disposable = false;
  /** Its own deadline passed (it was cancelled with its own TimeoutError). */
  #timedOut = false;

  // ── the registry of open scopes (owner running), oldest first ──
  #regPrev: ScopeNode | undefined = undefined;
  #regNext: ScopeNode | undefined = undefined;
  #registered = false;
  /** Set once the scope is overdue and held weakly (see `#sweep`). */
  #weakSelf: WeakRef<ScopeNode> | undefined = undefined;
  static #head: ScopeNode | undefined = undefined;
  static #tail: ScopeNode | undefined = undefined;
  /** Overdue scopes whose owner still runs, held weakly: a function that can never settle is garbage. */
  static readonly #overdue = /* @__PURE__ */ new Set<WeakRef<ScopeNode>>();
  /** Scopes cancelled while their owner ran, since the last sweep. */
  static #candidates: ScopeNode[] = [];
  /** The size of `#overdue` at which the next sweep drops the references whose scope was collected. */
  static #pruneAt = 1024;

  /**
   * @param name - Its name (for a gather task's scope, the gather's: see `task`).
   * @param clock - The clock its deadline is measured on.
   * @param parent - The enclosing scope, if any.
   * @param deadline - Its own deadline, a time on `clock` (`Infinity` for none).
   * @param timeoutMs - The timeout the caller asked for, reported in its TimeoutError.
   * @param now - The time on `clock` it is opened at.
   * @param signal - An outside signal that cancels it.
   * @param timeoutError - Makes the error it is cancelled with when its own deadline passes (the
   *   error its caller receives, and the one published on `loopsafe:timeout`); by default a
   *   TimeoutError naming the scope and its timeout.
   * @param named - Whether the caller gave `name` (not a primitive's default): see `OpenOptions.named`.
   */
  constructor(
    name: string,
    clock: Clock,
    parent: ScopeNode | undefined,
    deadline: number,
    timeoutMs: number,
    now: number,
    signal: AbortSignal | undefined,
    timeoutError: TimeoutErrorFactory | undefined,
    named: boolean,
  ) {
    super(clock, parent, signal, deadline, true);
    this.#name = name;
    this.#parentScope = parent;
    this.#createdAt = now;
    this.#timeoutMs = timeoutMs;
    this.#timeoutError = timeoutError;
    this.#named = named;
  }

  /**
   * Links the scope into the tree and registers it as open. A scope whose
   * deadline has already passed is expired at once. Returns the scope.
   */
  open(): this {
    if (!inspectable) makeInspectable();
    if (captureStacks) {
      const origin: { stack?: string } = {};
      // eslint-disable-next-line @typescript-eslint/unbound-method -- only its identity is used: the frames above it are cut
      Error.captureStackTrace(origin, ScopeNode.prototype.open);
      this.#origin = origin;
    }
    ScopeNode.#register(this);
    const now = this.#createdAt;
    // Opened past its own deadline: expired at once (its function is not run).
    if (!this.attach(now)) {
      // Born cancelled while its owner runs (a gather's task that ignored its signal is listed so):
      // held weakly from the next sweep on, as any overdue scope.
      ScopeNode.#markOverdue(this);
    } else if (this.ownDeadline <= now) {
      this.onDeadline();
    }
    return this;
  }

  /** Sets the owner's cancellation hook (replacing any earlier one). */
  onAbort(hook: AbortHook | undefined): void {
    this.#onAbort = hook;
  }

  /** Makes `runScoped`'s promise (its native resolve functions) the one a cancellation rejects. */
  settles(resolve: (value: never) => void, reject: (reason: unknown) => void): void {
    this.#resolveOwner = resolve;
    this.#rejectOwner = reject;
  }

  /** Whether a cancellation decided the owner's outcome (see {@link ScopeNode.settles}). */
  get decided(): boolean {
    return this.#decided;
  }

  /** Makes this a context that `[Symbol.dispose]` closes. */
  makeDisposable(): void {
    this.#disposable = true;
  }

  /** The owner finished: the scope leaves the registry and is released unless work inside still needs it. */
  exit(): void {
    if (!this.ownerRunning) return;
    this.#onAbort = undefined;
    this.#resolveOwner = undefined;
    this.#rejectOwner = undefined;
    ScopeNode.#unregister(this);
    this.finishOwner();
  }

  // ── the public Scope ───────────────────────────────────────────────

  get name(): string {
    return this.#name;
  }

  /** Whether its name was given by the caller, not a primitive's default (for tracing). */
  get named(): boolean {
    return this.#named;
  }

  get parent(): ScopeNode | undefined {
    return this.#parentScope;
  }

  get createdAt(): number {
    return this.#createdAt;
  }

  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  /** Where it was opened, while stack capture was on. */
  get origin(): string | undefined {
    return this.#origin?.stack;
  }

  get deadline(): number {
    return this.effectiveDeadline();
  }

  get expired(): boolean {
    return this.deadlinePassed || this.deadlineDue();
  }

  /**
   * The signal. Read after the scope was left, it links the scope again (a
   * loopsafe call like any other) while a deadline bounds it, so work handed
   * this signal is still bounded by the deadline. A scope with no deadline is
   * only looked at: the signal is aborted if the scope or an enclosing one was
   * cancelled meanwhile, and the scope is released again, for nothing would
   * ever release it (a server's finished request scopes, each read once after
   * it ended, would each stay linked under the server's signal).
   */
  get signal(): AbortSignal {
    if (this.released) {
      this.relink();
      if (!this.hasDeadline) this.releaseIfIdle();
    }
    let controller = this.#controller;
    if (controller === undefined) {
      controller = this.#controller = new AbortController();
      if (this.cancelled) controller.abort(this.reason);
    }
    return controller.signal;
  }

  remaining(): number {
    return this.remainingTime();
  }

  check(): void {
    if (this.released) {
      // Looked at, not used: linked again to see what was cancelled meanwhile, then released again.
      this.relink();
      this.releaseIfIdle();
    } else if (!this.cancelled) {
      this.expireIfDue();
    }
    if (this.cancelled) {
      const reason = this.reason;
      takeStack(reason);
      throw reason;
    }
  }

  cancel(reason?: unknown): void {
    this.cancelTree(reason === undefined ? new DOMException('The scope was cancelled', 'AbortError') : reason, false);
  }

  [Symbol.dispose](): void {
    if (this.#disposable) this.exit();
  }

  override toString(): string {
    return `Scope(${this.name})`;
  }

  /** What `util.inspect` shows (installed as its custom inspector on first use: see `open`). */
  describe(): object {
    return new Scope(
      this.name,
      this.remainingTime(),
      this.cancelled ? 'cancelled' : this.ownerRunning ? 'open' : 'closed',
    );
  }

  // ── the engine ─────────────────────────────────────────────────────

  /** A released scope links again (and is expired at once if its deadline passed meanwhile). */
  relink(): void {
    if (!this.released) return;
    this.reattach();
    if (!this.cancelled) this.expireIfDue();
  }

  /** Expires the scope whose own deadline this is: its TimeoutError, published, then the cascade. */
  protected onDeadline(): void {
    if (this.cancelled) return;
    const make = this.#timeoutError;
    const error = make === undefined ? newTimeoutError(this.name, this.#timeoutMs) : make(this);
    publishTimeout(this.name, this.#timeoutMs, error, this);
    this.#timedOut = true;
    this.cancelTree(error, true);
  }

  protected onCancelled(reason: unknown): void {
    if (this.ownerRunning) ScopeNode.#markOverdue(this);
    this.#controller?.abort(reason);
    const reject = this.#rejectOwner;
    if (reject !== undefined) {
      const resolve = this.#resolveOwner as (value: never) => void;
      this.#resolveOwner = undefined;
      this.#rejectOwner = undefined;
      this.#decided = true;
      rejectAtCaller(resolve, reject, reason);
    }
    const hook = this.#onAbort;
    if (hook !== undefined) {
      this.#onAbort = undefined;
      hook(reason);
    }
  }

  /** Cancelled by its own deadline: `reason` is its own TimeoutError. */
  get timedOut(): boolean {
    return this.#timedOut;
  }

  /** The scope whose deadline is this one's (itself, or the enclosing scope that owns it). */
  get deadlineScope(): ScopeNode {
    // Only scopes have children, so the owner of a scope's deadline is a scope.
    const owner = this.deadlineOwner;
    return owner instanceof ScopeNode ? owner : this;
  }

  // ── the registry ───────────────────────────────────────────────────

  static #register(scope: ScopeNode): void {
    scope.#registered = true;
    const tail = ScopeNode.#tail;
    scope.#regPrev = tail;
    if (tail === undefined) ScopeNode.#head = scope;
    else tail.#regNext = scope;
    ScopeNode.#tail = scope;
  }

  static #unregister(scope: ScopeNode): void {
    if (!scope.#registered) {
      const ref = scope.#weakSelf;
      if (ref !== undefined) {
        scope.#weakSelf = undefined;
        ScopeNode.#overdue.delete(ref);
      }
      return;
    }
    scope.#registered = false;
    const prev = scope.#regPrev;
    const next = scope.#regNext;
    if (prev === undefined) ScopeNode.#head = next;
    else prev.#regNext = next;
    if (next === undefined) ScopeNode.#tail = prev;
    else next.#regPrev = prev;
    scope.#regPrev = undefined;
    scope.#regNext = undefined;
  }

  /**
   * A scope cancelled while its owner runs stays in the registry for now: most
   * owners settle within a few microtasks of their signal aborting. A sweep in
   * the next macrotask holds the ones still running weakly instead, so a
   * function that can never settle is not kept alive by the registry.
   */
  static #markOverdue(scope: ScopeNode): void {
    const candidates = ScopeNode.#candidates;
    if (candidates.push(scope) === 1) runSoon(ScopeNode.#sweep);
  }

  static readonly #sweep = (): void => {
    const candidates = ScopeNode.#candidates;
    if (candidates.length === 0) return;
    ScopeNode.#candidates = [];
    for (const scope of candidates) {
      if (!scope.ownerRunning || scope.#weakSelf !== undefined) continue;
      ScopeNode.#unregister(scope);
      const ref = new WeakRef(scope);
      scope.#weakSelf = ref;
      ScopeNode.#overdue.add(ref);
    }
    const overdue = ScopeNode.#overdue;
    if (overdue.size >= ScopeNode.#pruneAt) {
      for (const ref of overdue) if (ref.deref() === undefined) overdue.delete(ref);
      ScopeNode.#pruneAt = Math.max(1024, 2 * overdue.size);
    }
  };

  /** The open scopes: owners running, overdue ones included. Unordered. */
  static openScopes(): ScopeNode[] {
    // Held weakly at once, not at the next macrotask: the listing is the same either way.
    if (ScopeNode.#candidates.length > 0) ScopeNode.#sweep();
    const list: ScopeNode[] = [];
    for (let scope = ScopeNode.#head; scope !== undefined; scope = scope.#regNext) list.push(scope);
    for (const ref of ScopeNode.#overdue) {
      const scope = ref.deref();
      if (scope === undefined) ScopeNode.#overdue.delete(ref);
      else list.push(scope);
    }
    return list;
  }
}

/** What `util.inspect` shows of a scope: `Scope { name, remainingMs, state }` (hence its name). */
class Scope {
  constructor(
    readonly name: string,
    readonly remainingMs: number,
    readonly state: 'open' | 'closed' | 'cancelled',
  ) {}
}
