/**
 * `hedge`: hedged requests — start another attempt of a slow operation after
 * a delay, take the first to fulfil, abort the rest.
 *
 * @module
 */
import type { Clock } from './clock.js';
import { Contest } from './internal/contest.js';
import { LeafWait, openScope, type ScopeNode } from './internal/engine/index.js';
import { publishHedge } from './internal/publish.js';
import { absorb } from './internal/stacks.js';
import {
  assertClock,
  assertDuration,
  assertFunction,
  assertOptionalString,
  assertOptions,
  assertSignal,
  describe,
} from './internal/validate.js';

/**
 * Options for {@link hedge}.
 *
 * @category Resilience policies
 */
export interface HedgeOptions {
  /**
   * Milliseconds to wait for an attempt to fulfil before starting the next one
   * beside it (typically the operation's p95 latency). `Infinity`: another
   * attempt starts only when one fails.
   */
  delayMs: number;
  /**
   * Attempts in all, the first included: an integer ≥ 1.
   * @defaultValue `2`
   */
  maxAttempts?: number | undefined;
  /** Aborts the hedge and every attempt; it rejects with the signal's reason (`===`). */
  signal?: AbortSignal | undefined;
  /**
   * Milliseconds for the whole hedge (bounded by the ambient deadline too).
   * @defaultValue `Infinity`
   */
  timeout?: number | undefined;
  /**
   * Names the hedge's scope (its {@link TimeoutError}, {@link pendingScopes});
   * attempt `n` runs in a child scope named `` `${name}[${n - 1}]` ``.
   * @defaultValue `fn.name`, else `'hedge'`
   */
  name?: string | undefined;
  /** @defaultValue the ambient scope's clock, else {@link systemClock} */
  clock?: Clock | undefined;
}

const HEDGE_OPTIONS = new Set(['delayMs', 'maxAttempts', 'signal', 'timeout', 'name', 'clock']);

/** The wait before the next attempt: a leaf of the hedge's scope, so its deadline bounds it. */
class HedgeDelay extends LeafWait<undefined> {
  readonly #hedge: Hedge<unknown>;

  constructor(hedge: Hedge<unknown>, clock: Clock, scope: ScopeNode, delayMs: number) {
    super(clock, scope, undefined, delayMs);
    this.#hedge = hedge;
  }

  protected onDeadline(): void {
    if (this.fulfil(undefined)) this.#hedge.next('delay');
  }

  /** Stops the wait: its timer is cleared and it leaves the tree. */
  stop(): void {
    this.fulfil(undefined);
  }
}

class Hedge<T> extends Contest<T> {
  readonly #fn: (signal: AbortSignal, attempt: number) => T | PromiseLike<T>;
  readonly #delayMs: number;
  readonly #maxAttempts: number;
  readonly #scope: ScopeNode;
  #started = 0;
  #delay: HedgeDelay | undefined = undefined;

  constructor(
    scope: ScopeNode,
    fn: (signal: AbortSignal, attempt: number) => T | PromiseLike<T>,
    delayMs: number,
    maxAttempts: number,
  ) {
    super(scope, scope.name);
    this.#scope = scope;
    this.#fn = fn;
    this.#delayMs = delayMs;
    this.#maxAttempts = maxAttempts;
  }

  protected get closed(): boolean {
    return this.#started >= this.#maxAttempts;
  }

  protected onWin(): void {
    // The winner is the attempt the caller receives; hedged starts were published as they happened.
  }

  protected override onDone(): void {
    this.#stopDelay();
  }

  /** An attempt failed: the next starts at once, without waiting for the delay (as Polly's hedging does). */
  protected override onFailure(): void {
    if (!this.closed) this.next('failure');
  }

  run(): Promise<T> {
    if (this.begin()) this.next(undefined);
    return this.promise;
  }

  /** Starts the next attempt (unless the deadline has passed), then waits `delayMs` before the one after. */
  next(trigger: 'delay' | 'failure' | undefined): void {
    this.#stopDelay();
    if (this.done || this.closed) return;
    const scope = this.#scope;
    if (scope.expired) {
      // Never an attempt past the deadline: expiring the scope now rejects the hedge with its TimeoutError.
      try {
        scope.check();
      } catch {
        // The scope's cancellation has rejected the hedge.
      }
      return;
    }
    const attempt = ++this.#started;
    if (trigger !== undefined) publishHedge(scope.name, attempt, trigger, this.active);
    const fn = this.#fn;
    this.enter(attempt - 1, (signal) => fn(signal, attempt));
    // Decided, or a synchronous failure already started the next attempt (which armed its own delay).
    if (this.#movedOn(attempt) || this.#delayMs === Number.POSITIVE_INFINITY) return;
    const delay = new HedgeDelay(this as Hedge<unknown>, scope.clock, scope, this.#delayMs);
    if (delay.begin()) this.#delay = delay;
    absorb(delay.promise);
  }

  /** Whether, once attempt `attempt` was entered, there is no delay to arm after it: decided, the last one, or superseded. */
  #movedOn(attempt: number): boolean {
    return this.done || this.closed || this.#started !== attempt;
  }

  #stopDelay(): void {
    const delay = this.#delay;
    if (delay === undefined) return;
    this.#delay = undefined;
    delay.stop();
  }
}

/**
 * Runs `fn(signal, attempt)`, and each time `delayMs` passes without an
 * attempt having fulfilled, starts another attempt beside the running ones —
 * up to `maxAttempts` in all. The first attempt to fulfil wins; every other
 * is aborted. A hedged request cuts the tail latency of an operation that is
 * usually fast and sometimes slow (a replica that stalls, a lost packet), for
 * a bounded share of extra load.
 *
 * - Attempt `n` runs in a child scope of the hedge's scope, named
 *   `` `${name}[${n - 1}]` ``, which is ambient while it runs and whose signal
 *   it receives. The winner's signal never aborts; the losers' abort in the
 *   tick the winner fulfils, with an `AbortError` naming the hedge, and the
 *   hedge fulfils without waiting for them (their late outcomes are absorbed).
 * - An attempt that fails starts the next one at once (the delay then counts
 *   from that start), as Polly's hedging does: a fast failure is no reason to
 *   wait. The other attempts keep running.
 * - When every attempt has failed, rejects with a {@link GatherError} of all
 *   their errors, in the order they happened (`cause` is the first). Attempts
 *   overlap, so no single one is "the last": the aggregate keeps them all.
 * - Deadline-aware: never starts an attempt once the deadline (its own
 *   `timeout`, or an enclosing one) has passed — the delay is a leaf of the
 *   hedge's scope and ends with it — and at the deadline rejects with that
 *   scope's {@link TimeoutError}, aborting every attempt. `signal` aborting
 *   rejects with its reason (`===`). No timer is left behind.
 * - Each attempt after the first is published on `loopsafe:hedge`.
 *
 * Hedge only idempotent operations (reads, idempotent writes): the losers may
 * have done their work before they saw the abort.
 *
 * @param fn - The operation; receives its attempt's signal and the attempt number (from 1).
 * @param options - `delayMs` (required), `maxAttempts`, `signal`, `timeout`, `name`, `clock`.
 * @returns The value of the first attempt to fulfil.
 * @throws {@link GatherError} (rejection) when every attempt failed.
 * @throws {@link TimeoutError} (rejection) at the hedge's timeout or an enclosing deadline; the caller's reason when `signal` aborts.
 * @throws `TypeError`/`RangeError` (synchronously) for a bad `fn` or option.
 * @category Resilience policies
 * @example
 * ```ts
 * import { hedge, safeSleep } from 'loopsafe';
 *
 * const latencies = [1_000, 5]; // the first replica stalls; the hedged attempt is fast
 * const started: number[] = [];
 * const value = await hedge(
 *   async (signal, attempt) => {
 *     started.push(attempt);
 *     await safeSleep(latencies[attempt - 1] ?? 5, { signal });
 *     return `attempt ${attempt}`;
 *   },
 *   { delayMs: 20, maxAttempts: 3, timeout: 2_000 },
 * );
 * console.log(value, started); // 'attempt 2' [1, 2]
 * ```
 */
export function hedge<T>(
  fn: (signal: AbortSignal, attempt: number) => T | PromiseLike<T>,
  options: HedgeOptions,
): Promise<Awaited<T>> {
  assertFunction('fn', fn);
  // Required: callers without types may pass nothing at all.
  const given: unknown = options;
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new TypeError(`Expected the options of hedge() to be an object with \`delayMs\`, got ${describe(given)}`);
  }
  assertOptions('hedge', options, HEDGE_OPTIONS);
  const { delayMs, maxAttempts = 2, timeout = Number.POSITIVE_INFINITY } = options;
  assertDuration('delayMs', delayMs);
  if (typeof maxAttempts !== 'number') {
    throw new TypeError(`Expected \`maxAttempts\` to be an integer ≥ 1, got ${describe(maxAttempts)}`);
  }
  if (!(Number.isInteger(maxAttempts) && maxAttempts >= 1)) {
    throw new RangeError(`Expected \`maxAttempts\` to be an integer ≥ 1, got ${describe(maxAttempts)}`);
  }
  assertDuration('timeout', timeout);
  assertSignal('signal', options.signal);
  assertClock('clock', options.clock);
  assertOptionalString('name', options.name);
  const scope = openScope({
    name: options.name ?? (fn.name || 'hedge'),
    timeoutMs: timeout,
    signal: options.signal,
    clock: options.clock,
  });
  return new Hedge<Awaited<T>>(
    scope,
    fn as (signal: AbortSignal, attempt: number) => Awaited<T> | PromiseLike<Awaited<T>>,
    delayMs,
    maxAttempts,
  ).run();
}
