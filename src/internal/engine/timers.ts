/**
 * Deadline timers: how a node of the cancellation tree waits for its own
 * deadline. Two strategies behind one small interface:
 *
 * - **The system clock** (`performance.now()` and the platform's timers): one
 *   shared platform timer for the whole process, armed for the earliest
 *   deadline in a binary min-heap. Adding and removing a deadline costs a
 *   heap operation, not a platform timer: a timeout that is cleared before it
 *   fires never touches `setTimeout`. When the heap empties, the platform
 *   timer is left armed but `unref`'d (it keeps nothing alive, and the next
 *   deadline that comes later reuses it); it is `ref`'d while any deadline in
 *   the heap may keep the process alive.
 *   The shared timer is always armed through the platform's own
 *   `setTimeout`, as it was when loopsafe loaded.
 * - **The system clock under a fake-timer tool** (the global `setTimeout` is
 *   not the platform's own when the deadline is armed: vitest's, sinon's,
 *   node:test's `mock.timers`): one timer per deadline, armed through the
 *   tool's `setTimeout` and cleared through its `clearTimeout`, so the tool
 *   fires each deadline on its own tick. (One shared timer re-armed through
 *   the tool cannot work: a tool that leaves `performance.now()` alone gives
 *   no way to tell how much of an earlier deadline has already passed.)
 * - **Any other clock** (a manual clock, a custom one): one clock timer per
 *   armed node, so `clock.pendingTimers` counts exactly the armed branches.
 *
 * Both follow one rule for when a deadline is due: **a timer that fires
 * means its time has come**, even when `now()` reads a little earlier
 * (Node's timers fire up to 1 ms early) or has not moved at all (fake-timer
 * tools that fake `setTimeout` but not `performance.now()`). Only delays
 * longer than 2^31−1 ms are split into chunks, each re-armed from the time
 * the previous chunk stood for.
 *
 * @internal
 * @module
 */
import { MAX_TIMER_DELAY_MS, systemClock, type Clock } from '../../clock.js';
import { IndexedHeap } from '../heap.js';
import { inRootContext, nativeClearTimeout, nativeSetTimeout } from '../platform.js';

/** What a deadline timer calls when its deadline is due. */
export interface DeadlineTarget {
  deadlineReached(): void;
}

/** An armed deadline. */
export interface DeadlineTimer {
  /** Disarms it; idempotent. After this, the target is never called. */
  cancel(): void;
  /** Whether it may keep the process alive (it may by default). */
  setRef(ref: boolean): void;
}

/**
 * Arms a timer that calls `target.deadlineReached()` once `at` (a time on
 * `clock`) has come. `now` is the time on `clock` the deadline was computed
 * from: the timer's delay is measured from it, so a timeout of 100 ms arms a
 * 100 ms timer — exactly, even under fake timers that leave `now()` alone.
 */
export function armDeadline(
  clock: Clock,
  at: number,
  now: number,
  target: DeadlineTarget,
  ref: boolean,
): DeadlineTimer {
  if (clock === systemClock) {
    if (globalThis.setTimeout !== nativeSetTimeout) return new ClockDeadline(toolClock(), at, now, target, ref);
    // Due already (a `safeSleep(0)`): a platform timer of its own, so it fires after the platform timers
    // armed before it, as a `setTimeout(fn, 0)` would, and the shared timer keeps its place for the
    // deadlines armed earlier.
    if (at <= now) return new ClockDeadline(nativeClock, at, now, target, ref);
    const entry = new QueuedDeadline(at, target, ref);
    systemDeadlines.add(entry, now);
    return entry;
  }
  return new ClockDeadline(clock, at, now, target, ref);
}

/** The system clock through the platform's own timers, for a deadline that is due when it is armed. */
const nativeClock: Clock = {
  now: () => systemClock.now(),
  // Called as plain functions: a browser's setTimeout throws when called as a method of another object.
  setTimeout: (callback, delayMs) => nativeSetTimeout(callback, delayMs),
  clearTimeout: (handle) => {
    nativeClearTimeout(handle);
  },
};

/** The system clock's time, read through the fake-timer tool's `setTimeout` and `clearTimeout` of the moment. */
let fakeClock: Clock | undefined;
/** The global `setTimeout` that `fakeClock` arms through. */
let fakeSetTimeout: unknown;

/**
 * The system clock as a deadline armed now under a fake-timer tool sees it:
 * the tool's `setTimeout` and `clearTimeout` (captured now, so a timer is
 * cleared through the tool it was armed through, even once the tool is
 * uninstalled), delays in whole milliseconds as Node's timers count them.
 */
function toolClock(): Clock {
  const set = globalThis.setTimeout;
  if (fakeClock !== undefined && fakeSetTimeout === set) return fakeClock;
  const arm = set as (callback: () => void, delayMs: number) => unknown;
  const clear = globalThis.clearTimeout as (handle: unknown) => void;
  fakeSetTimeout = set;
  fakeClock = {
    now: () => systemClock.now(),
    setTimeout: (callback, delayMs) => arm(callback, Math.round(delayMs)),
    clearTimeout: (handle) => {
      clear(handle);
    },
  };
  return fakeClock;
}

type Handle = { ref?: () => unknown; unref?: () => unknown } | null | undefined;

function refHandle(handle: unknown, ref: boolean): void {
  const timer = handle as Handle;
  if (ref) timer?.ref?.();
  else timer?.unref?.();
}

// ── the system clock: one platform timer, a heap of deadlines ──────────────

class QueuedDeadline implements DeadlineTimer {
  /** The deadline, on the system clock. */
  readonly at: number;
  /** Insertion order: ties between equal deadlines fire first-in first-out. */
  seq = 0;
  /** Position in the heap; -1 once out of it (fired or cancelled). */
  index = -1;
  ref: boolean;
  target: DeadlineTarget | undefined;

  constructor(at: number, target: DeadlineTarget, ref: boolean) {
    this.at = at;
    this.target = target;
    this.ref = ref;
  }

  cancel(): void {
    this.target = undefined;
    if (this.index >= 0) systemDeadlines.remove(this);
  }

  setRef(ref: boolean): void {
    if (this.ref === ref) return;
    this.ref = ref;
    if (this.index >= 0) systemDeadlines.countRef(ref);
  }
}

function earlier(a: QueuedDeadline, b: QueuedDeadline): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

class SystemDeadlines {
  readonly #heap = new IndexedHeap<QueuedDeadline>(earlier);
  /** Entries in the heap that may keep the process alive. */
  #refs = 0;
  #seq = 0;
  /** The platform timer, while one is armed. */
  #timer: unknown = undefined;
  /** The time the armed platform timer stands for: the earliest deadline when armed, or a chunk's end. */
  #timerAt = Number.POSITIVE_INFINITY;
  /** The platform timer's callback runs in the root async context: it serves every scope, not the one that armed it. */
  readonly #fire = inRootContext((): void => {
    this.#onTimer();
  });

  add(entry: QueuedDeadline, now: number): void {
    entry.seq = this.#seq++;
    this.#heap.push(entry);
    if (entry.ref) this.countRef(true);
    // Re-armed only when it is the earliest: moving the timer would put the deadlines armed
    // before it behind the platform timers armed since (a deadline due already never comes here).
    if (entry.at < this.#timerAt) this.#arm(now);
  }

  remove(entry: QueuedDeadline): void {
    this.#heap.remove(entry);
    if (entry.ref) this.countRef(false);
  }

  countRef(ref: boolean): void {
    if (ref) {
      if (this.#refs++ === 0) refHandle(this.#timer, true);
    } else if (--this.#refs === 0) {
      refHandle(this.#timer, false);
    }
  }

  /**
   * Arms the platform timer for the earliest deadline, measuring its delay
   * from `from`: the clock's now, or — when re-arming as the timer fires — the
   * time the fired timer stood for, which fake timers reach without moving
   * `performance.now()`.
   */
  #arm(from: number): void {
    const top = this.#heap.peek();
    if (top === undefined) return;
    if (this.#timer !== undefined) nativeClearTimeout(this.#timer);
    const wait = top.at - from;
    let delay: number;
    if (wait > MAX_TIMER_DELAY_MS) {
      delay = MAX_TIMER_DELAY_MS; // a chunk of a longer delay
      this.#timerAt = from + delay;
    } else {
      // Whole milliseconds, as Node's timers count them: a fake-timer tool then
      // fires it on the very tick a real timer would.
      delay = wait <= 0 ? 0 : Math.round(wait);
      this.#timerAt = top.at;
    }
    this.#timer = nativeSetTimeout(this.#fire, delay);
    if (this.#refs === 0) refHandle(this.#timer, false);
  }

  #onTimer(): void {
    const stoodFor = this.#timerAt;
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    // The timer fired, so the time it stood for has come, whatever now() says.
    const reached = Math.max(systemClock.now(), stoodFor);
    const heap = this.#heap;
    // Take every due entry out first: deadlines armed by the callbacks wait for
    // the next timer (a 0 ms deadline armed now never fires in this same turn).
    let due: QueuedDeadline[] | undefined;
    let first: QueuedDeadline | undefined;
    for (let entry = heap.peek(); entry !== undefined && entry.at <= reached; entry = heap.peek()) {
      this.remove(entry);
      if (first === undefined) first = entry;
      else (due ??= []).push(entry);
    }
    if (first !== undefined) {
      first.target?.deadlineReached();
      if (due !== undefined) for (const entry of due) entry.target?.deadlineReached();
    }
    const next = heap.peek();
    if (next !== undefined && (this.#timer === undefined || next.at < this.#timerAt)) {
      this.#arm(reached);
    }
  }
}

const systemDeadlines = /* @__PURE__ */ new SystemDeadlines();

// ── any other clock: a clock timer per armed node ──────────────────────────

class ClockDeadline implements DeadlineTimer {
  readonly #clock: Clock;
  readonly #at: number;
  #target: DeadlineTarget | undefined;
  #ref: boolean;
  #handle: unknown = undefined;
  /** The time the armed clock timer stands for. */
  #timerAt = 0;
  readonly #fire = inRootContext((): void => {
    this.#onTimer();
  });

  constructor(clock: Clock, at: number, now: number, target: DeadlineTarget, ref: boolean) {
    this.#clock = clock;
    this.#at = at;
    this.#target = target;
    this.#ref = ref;
    this.#arm(now);
  }

  #arm(from: number): void {
    const wait = this.#at - from;
    const delay = wait <= 0 ? 0 : wait > MAX_TIMER_DELAY_MS ? MAX_TIMER_DELAY_MS : wait;
    this.#timerAt = delay === wait ? this.#at : from + delay;
    this.#handle = this.#clock.setTimeout(this.#fire, delay);
    if (!this.#ref) refHandle(this.#handle, false);
  }

  #onTimer(): void {
    this.#handle = undefined;
    if (this.#target === undefined) return;
    const reached = Math.max(this.#clock.now(), this.#timerAt);
    if (reached >= this.#at) {
      const target = this.#target;
      this.#target = undefined;
      target.deadlineReached();
    } else {
      this.#arm(reached); // a chunk of a delay longer than 2^31−1 ms
    }
  }

  cancel(): void {
    this.#target = undefined;
    if (this.#handle !== undefined) {
      this.#clock.clearTimeout(this.#handle);
      this.#handle = undefined;
    }
  }

  setRef(ref: boolean): void {
    if (this.#ref === ref) return;
    this.#ref = ref;
    if (this.#handle !== undefined) refHandle(this.#handle, ref);
  }
}
