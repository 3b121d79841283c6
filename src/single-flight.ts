/**
 * `singleFlight`: request coalescing — concurrent calls with the same key
 * share one run of the work, and each caller can still leave on its own.
 *
 * @module
 */
import { ambientScope, LeafWait, openChild, runScoped, type ScopeNode } from './internal/engine/index.js';
import { systemClock } from './clock.js';
import { publishSingleFlight } from './internal/publish.js';
import { createDeferred, rejectedAtCaller } from './internal/stacks.js';
import { assertFunction, assertOptionalString, assertOptions, assertSignal } from './internal/validate.js';

/**
 * Options for {@link singleFlight}.
 *
 * @category Resilience policies
 */
export interface SingleFlightOptions {
  /**
   * Names the shared runs' scopes ({@link pendingScopes}, the stall watchdog)
   * and the `loopsafe:single-flight` messages.
   * @defaultValue `fn.name`, else `'singleFlight'`
   */
  name?: string | undefined;
}

/**
 * Options for one call of a {@link SingleFlight} function.
 *
 * @category Resilience policies
 */
export interface SingleFlightCallOptions {
  /** Releases this caller (it rejects with the signal's reason, `===`); the shared run goes on for the others. */
  signal?: AbortSignal | undefined;
}

/**
 * The function {@link singleFlight} returns: `(key, { signal? }) => promise`.
 *
 * @category Resilience policies
 */
export type SingleFlight<K, T> = (key: K, options?: SingleFlightCallOptions) => Promise<T>;

const FLIGHT_OPTIONS = new Set(['name']);
const CALL_OPTIONS = new Set(['signal']);

/** One shared run for one key, while it is in flight. */
class Flight<K, T> {
  /** Callers waiting for the run (one with neither a signal nor a scope can never leave, so it never leaves the count). */
  callers = 0;
  readonly scope: ScopeNode;
  /** The run's outcome, once its entry has left the map. */
  promise!: Promise<T>;
  readonly #group: Group<K, T>;
  readonly #key: K;

  constructor(group: Group<K, T>, key: K, scope: ScopeNode) {
    this.#group = group;
    this.#key = key;
    this.scope = scope;
  }

  /** A caller left before the run settled: the last one aborts it. */
  leave(): void {
    if (--this.callers > 0) return;
    const group = this.#group;
    // Out of the map first: a call made from here on (an abort listener of the run included) starts a fresh run.
    group.forget(this.#key, this);
    publishSingleFlight(group.name, this.#key, 'abandon', 0);
    const scope = this.scope;
    scope.cancel(
      createDeferred(() => new DOMException(`${scope.name} was cancelled: every caller has gone`, 'AbortError')),
    );
  }
}

/** One caller's wait for a shared run: bounded by its own signal and its ambient scope. */
class FlightWait<T> extends LeafWait<T> {
  #flight: Flight<unknown, T> | undefined = undefined;

  protected onDeadline(): void {
    // No deadline of its own: its scope's expiry reaches it through the tree.
  }

  join(flight: Flight<unknown, T>): Promise<T> {
    this.#flight = flight;
    flight.callers++;
    this.follow(flight.promise);
    return this.promise;
  }

  protected override withdraw(): void {
    const flight = this.#flight;
    if (flight === undefined) return;
    this.#flight = undefined;
    flight.leave();
  }
}

/** The runs in flight of one `singleFlight` function, by key. */
class Group<K, T> {
  readonly name: string;
  readonly #fn: (key: K, signal: AbortSignal) => T | PromiseLike<T>;
  readonly #flights = new Map<K, Flight<K, T>>();

  constructor(fn: (key: K, signal: AbortSignal) => T | PromiseLike<T>, name: string) {
    this.#fn = fn;
    this.name = name;
  }

  forget(key: K, flight: Flight<K, T>): void {
    if (this.#flights.get(key) === flight) this.#flights.delete(key);
  }

  call(key: K, options: SingleFlightCallOptions | undefined): Promise<T> {
    assertOptions(this.name, options, CALL_OPTIONS);
    const signal = options?.signal;
    assertSignal('signal', signal);
    if (signal?.aborted === true) return rejectedAtCaller(signal.reason);
    const scope = ambientScope();
    let wait: FlightWait<T> | undefined;
    if (scope !== undefined || signal !== undefined) {
      wait = new FlightWait<T>(scope?.clock ?? systemClock, scope, signal, Number.POSITIVE_INFINITY);
      // Born cancelled (an expired or cancelled ambient scope): rejected, and no run is started or joined.
      if (!wait.begin()) return wait.promise;
    }
    let flight = this.#flights.get(key);
    const joined = flight !== undefined;
    flight ??= this.#start(key);
    let promise: Promise<T>;
    if (wait === undefined) {
      // A caller that can never leave: counted for good, so the run is never abandoned under it.
      flight.callers++;
      promise = flight.promise;
    } else {
      promise = wait.join(flight as Flight<unknown, T>);
    }
    if (joined) publishSingleFlight(this.name, key, 'join', flight.callers);
    return promise;
  }

  /** Starts the shared run for `key`, detached from every caller's scope. */
  #start(key: K): Flight<K, T> {
    const fn = this.#fn;
    // A root scope: no caller's deadline or cancellation is the run's; it ends when the last caller leaves.
    const scope = openChild(undefined, { name: this.name });
    const flight = new Flight<K, T>(this, key, scope);
    const run = runScoped(scope, (s) => fn(key, s.signal));
    // The entry leaves the map before any caller sees the outcome: a caller that calls again then starts a new run.
    flight.promise = run.then(
      (value) => {
        this.forget(key, flight);
        return value;
      },
      (error: unknown) => {
        this.forget(key, flight);
        throw error;
      },
    );
    // No `absorb` here: every caller follows `flight.promise` (a caller that left keeps its reaction, which
    // stops the late outcome), so a rejection is always handled — and with one caller the chain from the
    // work to it has one reaction per link, so its errors keep the caller's async frames.
    if (!scope.cancelled) this.#flights.set(key, flight);
    return flight;
  }
}

/**
 * Coalesces concurrent calls: returns a function `(key, { signal? })` whose
 * concurrent calls with the same key share one run of `fn(key, signal)` and
 * its outcome — the classic fix for a thundering herd on a cache miss.
 *
 * - Keys are compared as a `Map` compares them (SameValueZero: `NaN` equals
 *   `NaN`, objects by identity).
 * - Each caller waits for the shared run bounded by its own `signal` and its
 *   own ambient deadline: when either ends, **that caller alone** is released
 *   (rejecting with its signal's reason, `===`, or its scope's
 *   {@link TimeoutError}), and the run goes on for the others.
 * - When the last caller has gone before the run settled, the run's signal
 *   aborts (an `AbortError` naming it) and its entry is dropped at once: a
 *   call made from then on starts a fresh run, never joins the dying one.
 * - Nothing is cached: the entry leaves before the callers see the outcome,
 *   so a call after the run settled (a failure included) starts a new run,
 *   and no memory is kept per key once its run settled.
 * - The shared run is detached from its callers' scopes — it runs in a root
 *   scope named `name`, with no deadline of its own (the first caller's
 *   deadline must not cut the run short for the others) — and is bounded by
 *   its callers: it stops when the last one leaves. A caller with neither a
 *   signal nor an ambient scope can never leave, so it keeps the run going
 *   until it settles.
 * - Each joining call, and each abandoned run, is published on `loopsafe:single-flight`.
 *
 * @param fn - The work for one key; receives the key and the shared run's signal.
 * @param options - `name`.
 * @returns The coalescing function.
 * @throws `TypeError` (synchronously) for a bad `fn` or option; the returned function throws synchronously for a bad `signal` or option.
 * @category Resilience policies
 * @example
 * ```ts
 * import { singleFlight, safeSleep } from 'loopsafe';
 *
 * let runs = 0;
 * const loadUser = singleFlight(async (id: number, signal: AbortSignal) => {
 *   runs++;
 *   await safeSleep(10, { signal });
 *   return { id, name: `user-${id}` };
 * });
 * const [a, b, c] = await Promise.all([loadUser(1), loadUser(1), loadUser(2)]);
 * console.log(runs, a === b, c.name); // 2 true 'user-2'
 *
 * // One caller gives up; the others still get the shared result.
 * const impatient = new AbortController();
 * const leaving = loadUser(3, { signal: impatient.signal });
 * const staying = loadUser(3);
 * impatient.abort(new Error('client went away'));
 * console.log(await leaving.catch((e: Error) => e.message), (await staying).name); // 'client went away' 'user-3'
 * ```
 */
export function singleFlight<K, T>(
  fn: (key: K, signal: AbortSignal) => T | PromiseLike<T>,
  options?: SingleFlightOptions,
): SingleFlight<K, Awaited<T>> {
  assertFunction('fn', fn);
  assertOptions('singleFlight', options, FLIGHT_OPTIONS);
  assertOptionalString('name', options?.name);
  const group = new Group<K, Awaited<T>>(
    fn as (key: K, signal: AbortSignal) => Awaited<T> | PromiseLike<Awaited<T>>,
    options?.name ?? (fn.name || 'singleFlight'),
  );
  return (key, callOptions) => group.call(key, callOptions);
}
