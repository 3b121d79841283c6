/**
 * The cancellation tree. Every loopsafe operation is a node: it can own a
 * deadline timer, hang under a parent scope (O(1) add and remove through the
 * parent's child set) and follow an outside `AbortSignal` through one shared
 * listener per signal. Nodes hold strong references to everything that can
 * still cancel them, so garbage collection can never make a deadline vanish.
 *
 * @internal
 * @module
 */
import { MAX_TIMER_DELAY_MS, type Clock } from '../clock.js';
import { unrefTimer } from './repeat.js';

/** How early (in ms) a timer may fire and still count as on time: Node's timer resolution. */
const TIMER_GRANULARITY_MS = 1;

/** What a node needs from the scope it hangs under. */
export interface ParentNode {
  readonly _clock: Clock;
  readonly _deadline: number;
  readonly _aborted: boolean;
  readonly _reason: unknown;
  /** Links a released (finished, idle) scope into the tree again, before a new child hangs under it. */
  _reattach(): void;
  /** Expires the scope now if its deadline has passed by the clock (cooperative check). */
  _expireIfDue(): void;
  /** Registers a child. */
  _adopt(child: CancelNode): void;
  /** Called by a child that no longer needs its parent. */
  _childDone(child: CancelNode): void;
}

export abstract class CancelNode {
  _clock: Clock;
  /** Absolute time on `_clock` at which this node's own timer fires; `Infinity` for none. */
  _timerAt: number;
  _timer: unknown;
  _unref: boolean;
  _parent: ParentNode | undefined;
  _hub: SignalHub | undefined;

  constructor(clock: Clock) {
    this._clock = clock;
    this._timerAt = Number.POSITIVE_INFINITY;
    this._timer = undefined;
    this._unref = false;
    this._parent = undefined;
    this._hub = undefined;
  }

  /** The node's own deadline passed (only called if it armed a timer). */
  abstract _onDeadline(): void;
  /** The parent scope or the outside signal cancelled this node. Links are already cut. */
  abstract _onCancel(reason: unknown): void;

  /** Arms the timer for `_timerAt`, chunked past 2^31−1 ms and re-armed if it fires more than 1 ms early. */
  _arm(): void {
    const at = this._timerAt;
    if (at === Number.POSITIVE_INFINITY) return;
    const delay = Math.min(Math.max(at - this._clock.now(), 0), MAX_TIMER_DELAY_MS);
    const handle = this._clock.setTimeout(() => {
      this._timer = undefined;
      // Node's timers count whole milliseconds from a loop time that can lag
      // `performance.now()`, so they may fire a fraction of a millisecond early.
      // Within that granularity the deadline is due: re-arming would cost a
      // whole loop turn (under load, tens of milliseconds late instead of <1 ms early).
      if (this._clock.now() >= at - TIMER_GRANULARITY_MS) this._onDeadline();
      else this._arm();
    }, delay);
    this._timer = handle;
    if (this._unref) unrefTimer(handle);
  }

  _disarm(): void {
    if (this._timer !== undefined) {
      this._clock.clearTimeout(this._timer);
      this._timer = undefined;
    }
  }

  /** Clears the timer and cuts every link, before the node's promise settles. */
  _detach(): void {
    this._disarm();
    const parent = this._parent;
    if (parent !== undefined) {
      this._parent = undefined;
      parent._childDone(this);
    }
    if (this._hub !== undefined) this._hub._leave(this);
  }
}

/**
 * One listener on an outside signal, shared by every node that follows it, so
 * 10,000 concurrent operations on one signal cost one listener, not 10,000.
 * The listener is removed as soon as no node follows the signal.
 */
export class SignalHub {
  readonly #signal: AbortSignal;
  readonly #members = new Set<CancelNode>();

  constructor(signal: AbortSignal) {
    this.#signal = signal;
    signal.addEventListener('abort', this);
  }

  /** Follows `signal` on behalf of `node`. The caller has checked `signal.aborted`. */
  static join(signal: AbortSignal, node: CancelNode): void {
    let hub = hubs.get(signal);
    if (hub === undefined) {
      hub = new SignalHub(signal);
      hubs.set(signal, hub);
    }
    hub.#members.add(node);
    node._hub = hub;
  }

  _leave(node: CancelNode): void {
    node._hub = undefined;
    this.#members.delete(node);
    if (this.#members.size === 0) this.#close();
  }

  #close(): void {
    this.#signal.removeEventListener('abort', this);
    if (hubs.get(this.#signal) === this) hubs.delete(this.#signal);
  }

  /** The `abort` event listener (an object listener: no closure per signal). */
  handleEvent(): void {
    this.#close();
    const reason: unknown = this.#signal.reason;
    const members = [...this.#members];
    this.#members.clear();
    for (const node of members) {
      node._hub = undefined;
      node._detach();
      node._onCancel(reason);
    }
  }
}

const hubs = new WeakMap<AbortSignal, SignalHub>();

/**
 * Hangs `node` under `parent` and `signal`, arming its own timer only when its
 * deadline comes before the parent's (otherwise the parent's expiry reaches it
 * through the tree). Returns `undefined` when linked, or the reason the node
 * is cancelled at birth — in which case nothing was linked or armed.
 */
export function linkNode(
  node: CancelNode,
  parent: ParentNode | undefined,
  signal: AbortSignal | undefined,
): { reason: unknown } | undefined {
  if (signal?.aborted === true) return { reason: signal.reason };
  if (parent !== undefined) {
    parent._reattach();
    parent._expireIfDue();
    if (parent._aborted) return { reason: parent._reason };
    if (parent._clock === node._clock && parent._deadline <= node._timerAt) node._timerAt = Number.POSITIVE_INFINITY;
    parent._adopt(node);
    node._parent = parent;
  }
  if (signal !== undefined) SignalHub.join(signal, node);
  node._arm();
  return undefined;
}
