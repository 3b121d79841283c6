/**
 * The cancellation tree: what every loopsafe operation is a node of. A node
 * hangs under the scope it was opened in, may follow an outside
 * `AbortSignal`, and may own a deadline. This class holds the whole tree's
 * state in `#private` fields and is the only code that changes it; scopes
 * (`scope-node.ts`) and leaf waits (`leaf.ts`) add what they do when they are
 * cancelled or reach their deadline. `ARCHITECTURE.md` describes the
 * lifecycle and the invariants kept here.
 *
 * @internal
 * @module
 */
import type { Clock } from '../../clock.js';
import { armDeadline, type DeadlineTarget, type DeadlineTimer } from './timers.js';

/** Linked into the tree: it follows its parent, its outside signal and its deadline. */
const LINKED = 0;
/** Its owner finished and nothing inside needs it: unlinked, not cancelled. A scope may link again. */
const RELEASED = 1;
/** Cancelled (by its deadline, its parent, its signal or `cancel()`): final. */
const CANCELLED = 2;

type Status = typeof LINKED | typeof RELEASED | typeof CANCELLED;

/**
 * One listener on an outside signal, shared by every node that follows it: 10,000
 * concurrent operations on one signal cost one listener, not 10,000. It is
 * removed as soon as no node follows the signal, and when the signal aborts.
 */
class SignalHub {
  readonly signal: AbortSignal;
  first: CancelNode | undefined = undefined;
  last: CancelNode | undefined = undefined;
  /** Whether its listener is on the signal: while any node follows it. */
  listening = false;

  constructor(signal: AbortSignal) {
    this.signal = signal;
  }

  /** The `abort` listener (an object listener: no closure per signal). */
  handleEvent(): void {
    CancelNode.hubAborted(this);
  }
}

const hubs = new WeakMap<AbortSignal, SignalHub>();

/** Reports an error thrown while settling one node without stopping the others (like an event listener's). */
function report(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

export abstract class CancelNode implements DeadlineTarget {
  /** The clock its deadline is measured on. */
  readonly #clock: Clock;
  /** The scope it was opened in. Kept once unlinked: a released scope links again through it. */
  readonly #above: CancelNode | undefined;
  /** The outside signal it follows; kept for the same reason. */
  readonly #signal: AbortSignal | undefined;
  #status: Status = RELEASED;

  // ── the tree: parent and children, doubly linked, O(1) add and remove ──
  /** The scope it hangs under: `#above` while linked, `undefined` otherwise. */
  #parent: CancelNode | undefined = undefined;
  #prev: CancelNode | undefined = undefined;
  #next: CancelNode | undefined = undefined;
  #first: CancelNode | undefined = undefined;
  #last: CancelNode | undefined = undefined;

  // ── the outside signal: membership of its hub ──
  #hub: SignalHub | undefined = undefined;
  #hubPrev: CancelNode | undefined = undefined;
  #hubNext: CancelNode | undefined = undefined;

  // ── deadlines ──
  /** Its own deadline on `#clock` (`Infinity` for none). */
  readonly #own: number;
  /** The effective deadline on `#clock`: `min(own, the deadline of the nearest ancestor on the same clock)`. */
  readonly #deadline: number;
  /** The node whose own deadline `#deadline` is: itself, or an ancestor on the same clock. Only it arms a timer. */
  readonly #owner: CancelNode;
  /** The nearest ancestor on another clock, whose deadline is read through it. */
  readonly #foreign: CancelNode | undefined;
  /** Its deadline timer: armed while linked, when it owns its deadline. */
  #timer: DeadlineTimer | undefined = undefined;

  // ── liveness ──
  /** Its owner has not finished: the function running in a scope, the pending wait of a leaf. */
  #running = true;
  /** Whether the running owner may keep the process alive. */
  readonly #runningRef: boolean;
  /**
   * How many reasons it has to keep the process alive: its running owner (if
   * it may) plus each child that has any. Its timer is ref'd while this is > 0.
   */
  #refs: number;

  // ── cancellation ──
  #reason: unknown = undefined;
  /** Cancelled because a deadline passed: its own or an ancestor's. */
  #byDeadline = false;

  /**
   * @param clock - The clock its deadline is measured on.
   * @param above - The scope it is opened in; it hangs under it for as long as it is linked.
   * @param signal - An outside signal that cancels it.
   * @param deadline - Its own deadline, a time on `clock`; `Infinity` for none.
   * @param ref - Whether its owner, while running, may keep the process alive (an `unref`'d sleep may not).
   */
  constructor(
    clock: Clock,
    above: CancelNode | undefined,
    signal: AbortSignal | undefined,
    deadline: number,
    ref: boolean,
  ) {
    this.#clock = clock;
    this.#above = above;
    this.#signal = signal;
    this.#own = deadline;
    this.#runningRef = ref;
    this.#refs = ref ? 1 : 0;
    if (above === undefined) {
      this.#deadline = deadline;
      this.#owner = this;
      this.#foreign = undefined;
    } else if (above.#clock === clock) {
      // No timer for a node whose parent's deadline comes first: the parent's expiry reaches it.
      const inherited = above.#deadline <= deadline;
      this.#deadline = inherited ? above.#deadline : deadline;
      this.#owner = inherited ? above.#owner : this;
      this.#foreign = above.#foreign;
    } else {
      this.#deadline = deadline;
      this.#owner = this;
      this.#foreign = above;
    }
  }

  // ── what subclasses add ──────────────────────────────────────────────

  /** Its own deadline was reached (only a node that owns its deadline has one). */
  protected abstract onDeadline(): void;
  /** It was cancelled: it is unlinked already, and so is everything inside it. */
  protected abstract onCancelled(reason: unknown): void;

  // ── reading the state ──────────────────────────────────────────────

  get clock(): Clock {
    return this.#clock;
  }

  /** Cancelled, for any reason. */
  get cancelled(): boolean {
    return this.#status === CANCELLED;
  }

  /** The reason it was cancelled (`undefined` until then). */
  get reason(): unknown {
    return this.#reason;
  }

  /** Released: its owner finished and it was unlinked, without being cancelled. */
  protected get released(): boolean {
    return this.#status === RELEASED && !this.#running;
  }

  /** Cancelled because a deadline passed: its own, an enclosing scope's. */
  get deadlinePassed(): boolean {
    return this.#byDeadline;
  }

  /** The node whose deadline is this node's effective deadline on its own clock. */
  protected get deadlineOwner(): CancelNode {
    return this.#owner;
  }

  /** Its own deadline (not inherited). */
  protected get ownDeadline(): number {
    return this.#own;
  }

  /** The effective deadline on its clock, enclosing scopes on other clocks included. */
  protected effectiveDeadline(): number {
    if (this.#foreign === undefined) return this.#deadline;
    const now = this.#clock.now();
    return now + this.#remainingFrom(now);
  }

  /** Milliseconds left before the effective deadline, enclosing scopes on other clocks included; 0 once cancelled. */
  protected remainingTime(): number {
    if (this.#status === CANCELLED) return 0;
    const remaining = this.#remainingFrom(this.#clock.now());
    return remaining > 0 ? remaining : 0;
  }

  #remainingFrom(now: number): number {
    let remaining = this.#deadline - now;
    for (let node = this.#foreign; node !== undefined; node = node.#foreign) {
      const left = node.#deadline - node.#clock.now();
      if (left < remaining) remaining = left;
    }
    return remaining;
  }

  /** Whether a deadline has passed: one that cancelled it, or one that the clocks say is due. */
  protected deadlineDue(): boolean {
    if (this.#byDeadline || this.#clock.now() >= this.#deadline) return true;
    for (let node = this.#foreign; node !== undefined; node = node.#foreign) {
      if (node.#clock.now() >= node.#deadline) return true;
    }
    return false;
  }

  // ── the lifecycle ──────────────────────────────────────────────────

  /**
   * Links a new node into the tree: under its parent, following its signal,
   * with its deadline armed if it owns it. `now` is the time on its clock it
   * was created at (read once per operation). Returns `false`, having linked
   * nothing, when it is born cancelled (the signal aborted, the parent
   * cancelled or past its deadline); `reason` then says why.
   */
  protected attach(now: number): boolean {
    const signal = this.#signal;
    if (signal?.aborted === true) return this.#bornCancelled(signal.reason, false);
    const above = this.#above;
    if (above !== undefined) {
      above.reattach();
      // A deadline that has passed by the clock cancels new work at once, even before its timer could fire.
      if (above.#status === LINKED) above.expireIfDue(above.#clock === this.#clock ? now : undefined);
      if (above.#status === CANCELLED) return this.#bornCancelled(above.#reason, above.#byDeadline);
    }
    this.#link(now);
    return true;
  }

  #bornCancelled(reason: unknown, byDeadline: boolean): false {
    this.#status = CANCELLED;
    this.#reason = reason;
    this.#byDeadline = byDeadline;
    this.#refs = 0;
    return false;
  }

  /** Links into the tree (the parent, if any, is linked); `now` is the current time on its clock. */
  #link(now: number): void {
    this.#status = LINKED;
    const parent = this.#above;
    if (parent !== undefined) {
      this.#parent = parent;
      const last = parent.#last;
      this.#prev = last;
      if (last === undefined) parent.#first = this;
      else last.#next = this;
      parent.#last = this;
      if (this.#refs > 0) CancelNode.#addRefs(parent, 1);
    }
    const signal = this.#signal;
    if (signal !== undefined) CancelNode.#join(signal, this);
    if (this.#owner === this && this.#own !== Number.POSITIVE_INFINITY) {
      this.#timer = armDeadline(this.#clock, this.#own, now, this, this.#refs > 0);
    }
  }

  /**
   * A released scope links again — with every released scope above it, top
   * down — before new work starts inside it, so that work is bounded by its
   * deadline. If something above was cancelled meanwhile, or its signal
   * aborted, it is cancelled now instead.
   */
  protected reattach(): void {
    if (this.#status !== RELEASED) return;
    const chain: CancelNode[] = [this];
    let top = this.#above;
    while (top !== undefined && top.#status === RELEASED) {
      chain.push(top);
      top = top.#above;
    }
    for (let i = chain.length - 1; i >= 0; i--) {
      const node = chain[i] as CancelNode;
      const above = node.#above;
      if (above !== undefined && above.#status === CANCELLED) {
        CancelNode.#cancelAll(chain.slice(0, i + 1), above.#reason, above.#byDeadline);
        return;
      }
      const signal = node.#signal;
      if (signal?.aborted === true) {
        CancelNode.#cancelAll(chain.slice(0, i + 1), signal.reason, false);
        // The scopes above it were linked again for it alone: released again, or nothing would.
        const above = chain[i + 1];
        if (above !== undefined) CancelNode.#releaseIfIdle(above);
        return;
      }
      node.#link(node.#clock.now());
    }
  }

  /** Unlinks from the tree: timer, signal, parent. The parent is told, and may be released in turn. */
  #unlink(): void {
    const parent = this.#cutLinks();
    if (parent !== undefined) CancelNode.#releaseIfIdle(parent);
  }

  /**
   * Cancels the timer, leaves the signal's hub and the parent's child list (and
   * its count of refs); returns the parent, which is not released here.
   */
  #cutLinks(): CancelNode | undefined {
    const timer = this.#timer;
    if (timer !== undefined) {
      this.#timer = undefined;
      timer.cancel();
    }
    if (this.#hub !== undefined) CancelNode.#leave(this);
    const parent = this.#parent;
    if (parent === undefined) return undefined;
    this.#parent = undefined;
    const prev = this.#prev;
    const next = this.#next;
    if (prev === undefined) parent.#first = next;
    else prev.#next = next;
    if (next === undefined) parent.#last = prev;
    else next.#prev = prev;
    this.#prev = undefined;
    this.#next = undefined;
    if (this.#refs > 0) CancelNode.#addRefs(parent, -1);
    return parent;
  }

  /**
   * Releases this node again if it was linked again only to be looked at (see
   * `reattach`): its owner is done and nothing hangs under it. Each node above
   * that was linked only for it is released in turn.
   */
  protected releaseIfIdle(): void {
    CancelNode.#releaseIfIdle(this);
  }

  /** Whether a deadline bounds it: its own or an enclosing scope's, on any clock. */
  protected get hasDeadline(): boolean {
    if (this.#deadline !== Number.POSITIVE_INFINITY) return true;
    for (let node = this.#foreign; node !== undefined; node = node.#foreign) {
      if (node.#deadline !== Number.POSITIVE_INFINITY) return true;
    }
    return false;
  }

  /** Releases `start`, and each node above it in turn, while its owner is done and nothing hangs under it. */
  static #releaseIfIdle(start: CancelNode): void {
    let node: CancelNode | undefined = start;
    while (node !== undefined && node.#status === LINKED && !node.#running && node.#first === undefined) {
      node.#status = RELEASED;
      // The parent is not told: the loop goes on with it.
      node = node.#cutLinks();
    }
  }

  /**
   * The owner finished (the function settled, the context was disposed, the
   * wait settled). The node is released unless work inside still needs it;
   * its timer stops keeping the process alive unless that work may.
   */
  protected finishOwner(): void {
    if (!this.#running) return;
    this.#running = false;
    if (this.#status !== LINKED) return;
    if (this.#first === undefined) {
      // Nothing inside needs it: unlinked at once (the parent's count drops with it).
      this.#status = RELEASED;
      this.#unlink();
      this.#refs = 0;
      return;
    }
    if (this.#runningRef) CancelNode.#addRefs(this, -1);
  }

  /** Whether its owner is still running. */
  protected get ownerRunning(): boolean {
    return this.#running;
  }

  /** Adds `delta` to the refs of `start` and, while the count crosses zero, of each node above. */
  static #addRefs(start: CancelNode, delta: number): void {
    let node: CancelNode | undefined = start;
    let change = delta;
    while (node !== undefined) {
      const before = node.#refs;
      const after = before + change;
      node.#refs = after;
      if (before > 0 === after > 0) return;
      node.#timer?.setRef(after > 0);
      change = after > 0 ? 1 : -1;
      node = node.#parent;
    }
  }

  /** From its timer. */
  deadlineReached(): void {
    this.#timer = undefined;
    if (this.#status === LINKED) this.onDeadline();
  }

  /**
   * The cooperative check: expires the deadline that is due by the clocks —
   * this node's (through its owner) or one of an enclosing scope on another
   * clock — even though no timer could fire yet. For a linked node; `now`,
   * when given, is the current time on its own clock.
   */
  protected expireIfDue(now?: number): void {
    if (this.#status === CANCELLED) return;
    if (this.#deadline !== Number.POSITIVE_INFINITY && (now ?? this.#clock.now()) >= this.#deadline) {
      this.#owner.onDeadline();
      return;
    }
    for (let node = this.#foreign; node !== undefined; node = node.#foreign) {
      if (node.#deadline !== Number.POSITIVE_INFINITY && node.#clock.now() >= node.#deadline) {
        node.#owner.onDeadline();
        return;
      }
    }
  }

  /** Cancels this node and everything inside it with `reason`, as a deadline that passed or not. */
  protected cancelTree(reason: unknown, byDeadline: boolean): void {
    CancelNode.#cancelAll([this], reason, byDeadline);
  }

  /**
   * Cancels every root and everything inside them, without recursion (a chain
   * of 100,000 nested scopes is a loop, not 100,000 stack frames). First the
   * whole subtree is marked and unlinked — so nothing inside can be linked
   * again, and every timer and listener is gone — then each node is told,
   * innermost first, siblings in the order they were opened, and the roots'
   * trees in the order of `roots` (a signal's followers in the order they
   * began to follow it).
   */
  static #cancelAll(roots: readonly CancelNode[], reason: unknown, byDeadline: boolean): void {
    const order: CancelNode[] = [];
    const stack: CancelNode[] = [];
    /** Where each root's part of `order` ends: each part is told from its end, the parts in the roots' order. */
    const ends: number[] = [];
    for (const root of roots) {
      if (root.#status === CANCELLED) continue;
      root.#unlink();
      stack.push(root);
      while (stack.length > 0) {
        const node = stack.pop() as CancelNode;
        node.#status = CANCELLED;
        node.#reason = reason;
        node.#byDeadline = byDeadline;
        node.#refs = 0;
        const timer = node.#timer;
        if (timer !== undefined) {
          node.#timer = undefined;
          timer.cancel();
        }
        if (node.#hub !== undefined) CancelNode.#leave(node);
        node.#parent = undefined;
        node.#prev = undefined;
        for (let child = node.#first; child !== undefined; child = child.#next) stack.push(child);
        node.#first = undefined;
        node.#last = undefined;
        order.push(node);
      }
      ends.push(order.length);
    }
    // Sibling links are cut after the walk above has used them.
    for (const node of order) node.#next = undefined;
    let start = 0;
    for (const end of ends) {
      for (let i = end - 1; i >= start; i--) {
        try {
          (order[i] as CancelNode).onCancelled(reason);
        } catch (error) {
          report(error);
        }
      }
      start = end;
    }
  }

  // ── outside signals ────────────────────────────────────────────────

  static #join(signal: AbortSignal, node: CancelNode): void {
    // The hub stays in the (weak) map while its signal lives: the next operation on the same
    // signal reuses it, and only its listener comes and goes.
    let hub = hubs.get(signal);
    if (hub === undefined) {
      hub = new SignalHub(signal);
      hubs.set(signal, hub);
    }
    if (!hub.listening) {
      hub.listening = true;
      signal.addEventListener('abort', hub);
    }
    node.#hub = hub;
    const last = hub.last;
    node.#hubPrev = last;
    if (last === undefined) hub.first = node;
    else last.#hubNext = node;
    hub.last = node;
  }

  static #leave(node: CancelNode): void {
    const hub = node.#hub as SignalHub;
    node.#hub = undefined;
    const prev = node.#hubPrev;
    const next = node.#hubNext;
    if (prev === undefined) hub.first = next;
    else prev.#hubNext = next;
    if (next === undefined) hub.last = prev;
    else next.#hubPrev = prev;
    node.#hubPrev = undefined;
    node.#hubNext = undefined;
    if (hub.first === undefined) CancelNode.#closeHub(hub);
  }

  static #closeHub(hub: SignalHub): void {
    hub.listening = false;
    hub.signal.removeEventListener('abort', hub);
  }

  /** The signal behind `hub` aborted: every node that follows it is cancelled with its reason. */
  static hubAborted(hub: SignalHub): void {
    const roots: CancelNode[] = [];
    for (let node = hub.first; node !== undefined; node = node.#hubNext) roots.push(node);
    for (const node of roots) {
      node.#hub = undefined;
      node.#hubPrev = undefined;
      node.#hubNext = undefined;
    }
    hub.first = undefined;
    hub.last = undefined;
    CancelNode.#closeHub(hub);
    CancelNode.#cancelAll(roots, hub.signal.reason, false);
  }

  // ── introspection for the engine's own tests ───────────────────────

  /** The tree as the engine sees it: for `test/engine/`, never for primitives. */
  static inspect(node: CancelNode): {
    status: 'linked' | 'released' | 'cancelled';
    children: number;
    refs: number;
    armed: boolean;
    following: boolean;
    parent: CancelNode | undefined;
  } {
    let children = 0;
    for (let child = node.#first; child !== undefined; child = child.#next) children++;
    return {
      status: node.#status === LINKED ? 'linked' : node.#status === RELEASED ? 'released' : 'cancelled',
      children,
      refs: node.#refs,
      armed: node.#timer !== undefined,
      following: node.#hub !== undefined,
      parent: node.#parent,
    };
  }

  /** The number of nodes following `signal` through its shared listener. */
  static followers(signal: AbortSignal): number {
    const hub = hubs.get(signal);
    let count = 0;
    for (let node = hub?.first; node !== undefined; node = node.#hubNext) count++;
    return count;
  }
}
