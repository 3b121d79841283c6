/**
 * The implementation behind the public `Scope` interface, the ambient-context
 * storage and the registry of open scopes.
 *
 * @internal
 * @module
 */
import type { Clock } from '../clock.js';
import { createTimeoutError, rethrowAtCaller } from '../errors.js';
import { CancelNode, linkNode, type ParentNode } from './cancel-node.js';
import { publishTimeout } from './publish.js';
import { createContextStorage } from './platform.js';

/**
 * The ambient scope. Entered with `run` once per scope, never with `enterWith`.
 * An `AsyncLocalStorage` on server runtimes; never set in the browser build.
 */
export const ambient = /* @__PURE__ */ createContextStorage<ScopeNode>();

/** Scopes whose owner has not finished: `withTimeout` functions still running, undisposed contexts. */
export const openScopes = new Set<ScopeNode>();

/**
 * Cancelled scopes whose function is still running (zombies that ignored their
 * signal). Held weakly: a function that can never settle is garbage, and the
 * registry must not be what keeps it alive.
 */
export const overdueScopes = new Set<WeakRef<ScopeNode>>();
/** Whether new scopes record where they were opened (costs a stack capture per scope). */
export const stackCapture = { enabled: false };

const forgetOverdue = /* @__PURE__ */ new FinalizationRegistry<WeakRef<ScopeNode>>((ref) => overdueScopes.delete(ref));

export interface ScopeInit {
  readonly name: string;
  readonly clock: Clock;
  readonly parent: ScopeNode | undefined;
  /** Own absolute deadline on `clock` (`Infinity` for none). */
  readonly deadline: number;
  /** The timeout the caller asked for, reported in the TimeoutError. */
  readonly timeoutMs: number;
  readonly signal: AbortSignal | undefined;
}

export class ScopeNode extends CancelNode implements ParentNode {
  readonly name: string;
  readonly parent: ScopeNode | undefined;
  readonly createdAt: number;
  /** Effective deadline: min(own, parent's). */
  readonly _deadline: number;
  /** The scope whose timer enforces `_deadline` (this one, or an ancestor). */
  readonly _deadlineOwner: ScopeNode;
  readonly _timeoutMs: number;
  readonly #outsideSignal: AbortSignal | undefined;
  _aborted = false;
  _reason: unknown = undefined;
  /** Aborted by its own deadline. */
  _timedOut = false;
  /** The owner (a `withTimeout` function, a context's `using` block) has finished. */
  _exited = false;
  /** Linked into the tree (timer, parent, outside signal). False once released or aborted. */
  _attached = false;
  /** Closed by `[Symbol.dispose]` (a `timeoutContext`); a function-owned scope closes when its function settles. */
  _disposable = false;
  /** The owner's hook: rejects a `withTimeout` promise. */
  _onAbort: ((reason: unknown) => void) | undefined = undefined;
  #children: Set<CancelNode> | undefined = undefined;
  #overdueRef: WeakRef<ScopeNode> | undefined = undefined;
  /** Where the scope was opened, when stack capture is on (formatted lazily by V8). */
  readonly _origin: { readonly stack?: string } | undefined;
  #controller: AbortController | undefined = undefined;

  constructor(init: ScopeInit) {
    super(init.clock);
    const { parent, clock } = init;
    this.name = init.name;
    this.parent = parent;
    this.createdAt = clock.now();
    this._timeoutMs = init.timeoutMs;
    this.#outsideSignal = init.signal;
    this._timerAt = init.deadline;
    if (stackCapture.enabled) {
      const origin: { stack?: string } = {};
      Error.captureStackTrace(origin, ScopeNode);
      this._origin = origin;
    } else {
      this._origin = undefined;
    }
    if (parent !== undefined && parent._clock === clock && parent._deadline <= init.deadline) {
      this._deadline = parent._deadline;
      this._deadlineOwner = parent._deadlineOwner;
    } else {
      this._deadline = init.deadline;
      this._deadlineOwner = this;
    }
    openScopes.add(this);
    this.#attach();
  }

  get deadline(): number {
    return this._deadline;
  }

  get clock(): Clock {
    return this._clock;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this._aborted) this.#controller.abort(this._reason);
    }
    return this.#controller.signal;
  }

  get expired(): boolean {
    return this._timedOut || this._clock.now() >= this._deadline;
  }

  remaining(): number {
    if (this._aborted) return 0;
    return Math.max(0, this._deadline - this._clock.now());
  }

  check(): void {
    this._expireIfDue();
    if (this._aborted) rethrowAtCaller(this._reason);
  }

  cancel(reason?: unknown): void {
    this._abort(reason === undefined ? new DOMException('The scope was cancelled', 'AbortError') : reason);
  }

  [Symbol.dispose](): void {
    if (this._disposable) this._exit();
  }

  override toString(): string {
    return `Scope(${this.name})`;
  }

  // ── tree ─────────────────────────────────────────────────────────────

  /** Links into the tree, or aborts at once when born cancelled or past the deadline. */
  #attach(): void {
    const born = linkNode(this, this.parent, this.#outsideSignal);
    if (born !== undefined) {
      this._abort(born.reason);
      return;
    }
    this._attached = true;
    if (this._clock.now() >= this._deadline) this._expireIfDue();
  }

  /** A finished scope that was released links itself again when new work starts inside it. */
  _reattach(): void {
    if (!this._attached && !this._aborted) this.#attach();
  }

  _adopt(child: CancelNode): void {
    (this.#children ??= new Set()).add(child);
  }

  _childDone(child: CancelNode): void {
    const children = this.#children;
    if (children === undefined) return;
    children.delete(child);
    if (children.size === 0 && this._exited) this.#release();
  }

  /** Unlinks a finished scope that nothing inside it still needs. */
  #release(): void {
    if (!this._attached) return;
    this._attached = false;
    this._detach();
  }

  _expireIfDue(): void {
    if (this._aborted || this._clock.now() < this._deadline) return;
    const owner = this._deadlineOwner;
    if (owner === this) {
      this._expire();
      return;
    }
    owner._expireIfDue();
    // A linked scope was just aborted by the owner's cascade (so this is a no-op);
    // a released one takes the owner's reason itself.
    if (owner._aborted) this._abort(owner._reason);
    else this._expire();
  }

  _onDeadline(): void {
    this._expire();
  }

  _expire(): void {
    if (this._aborted) return;
    this._timedOut = true;
    const error = createTimeoutError(this.name, this._timeoutMs);
    publishTimeout(this.name, this._timeoutMs, error, this);
    this._abort(error);
  }

  _onCancel(reason: unknown): void {
    this._abort(reason);
  }

  /** Cancels the scope: cuts its links, cancels everything inside, aborts its signal, then settles. */
  _abort(reason: unknown): void {
    if (this._aborted) return;
    this._aborted = true;
    this._reason = reason;
    this._attached = false;
    this._detach();
    const children = this.#children;
    this.#children = undefined;
    if (children !== undefined) {
      for (const child of children) {
        child._parent = undefined;
        child._detach();
        child._onCancel(reason);
      }
    }
    if (!this._exited && openScopes.delete(this)) {
      this.#overdueRef = new WeakRef(this);
      overdueScopes.add(this.#overdueRef);
      forgetOverdue.register(this, this.#overdueRef);
    }
    this.#controller?.abort(reason);
    const hook = this._onAbort;
    this._onAbort = undefined;
    hook?.(reason);
  }

  /** The owner finished. Releases the scope unless work inside still needs it. */
  _exit(): void {
    if (this._exited) return;
    this._exited = true;
    this._onAbort = undefined;
    openScopes.delete(this);
    if (this.#overdueRef !== undefined) overdueScopes.delete(this.#overdueRef);
    if (this.#children === undefined || this.#children.size === 0) this.#release();
  }

  /** Number of live children (diagnostics and tests). */
  get _childCount(): number {
    return this.#children?.size ?? 0;
  }
}

/** The ambient scope, if any. */
export function ambientScope(): ScopeNode | undefined {
  return ambient.getStore();
}
