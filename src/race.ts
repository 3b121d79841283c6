/**
 * `safeRace`: run task functions side by side; the first to fulfil wins and
 * every other is aborted.
 *
 * @module
 */
import type { Clock } from './clock.js';
import type { GatherTask } from './gather.js';
import { Contest } from './internal/contest.js';
import { ambientScope, openScope, type ScopeNode } from './internal/engine/index.js';
import { publishRace } from './internal/publish.js';
import {
  assertClock,
  assertDuration,
  assertOptionalString,
  assertOptions,
  assertSignal,
  describe,
} from './internal/validate.js';

/**
 * Options for {@link safeRace}.
 *
 * @category Resilience policies
 */
export interface RaceOptions {
  /** Aborts the race and every task; the race rejects with the signal's reason (`===`). */
  signal?: AbortSignal | undefined;
  /**
   * Milliseconds for the whole race (bounded by the ambient deadline too).
   * @defaultValue `Infinity`
   */
  timeout?: number | undefined;
  /**
   * Names the race's scope (its {@link TimeoutError}, {@link pendingScopes});
   * task `i` runs in a child scope named `` `${name}[${i}]` ``.
   * @defaultValue `'safeRace'`
   */
  name?: string | undefined;
  /** @defaultValue the ambient scope's clock, else {@link systemClock} */
  clock?: Clock | undefined;
}

/**
 * The value of {@link safeRace} for an array or tuple of tasks: any one of theirs.
 *
 * @category Resilience policies
 */
export type RaceResult<Tasks extends readonly GatherTask[]> = {
  [K in keyof Tasks]: Tasks[K] extends (...args: never[]) => infer R ? Awaited<R> : never;
}[number];

const RACE_OPTIONS = new Set(['signal', 'timeout', 'name', 'clock']);

class Race<T> extends Contest<T> {
  readonly #count: number;
  #started = 0;

  constructor(scope: ScopeNode | undefined, name: string, clock: Clock | undefined, count: number) {
    super(scope, name, clock);
    this.#count = count;
  }

  protected get closed(): boolean {
    return this.#started === this.#count;
  }

  protected onWin(index: number, aborted: number): void {
    publishRace(this.name, index, aborted);
  }

  run(tasks: readonly GatherTask<T>[]): Promise<T> {
    if (this.begin()) {
      // A task that fulfils synchronously wins at once: the tasks after it are never started.
      for (let i = 0; i < tasks.length && !this.done; i++) {
        this.#started++;
        this.enter(i, tasks[i] as GatherTask<T>);
      }
    }
    return this.promise;
  }
}

/**
 * Runs task functions side by side and fulfils with the value of the first to
 * fulfil; every other task is aborted.
 *
 * - Every task starts at once, in input order, each in a child scope of the
 *   race's scope (named `` `${name}[${i}]` ``), which is ambient while it runs
 *   and whose signal it receives. (With no `timeout`, no `signal` and no
 *   enclosing scope, nothing could cancel the race, so it opens no scope of
 *   its own: the tasks' scopes are roots. That path costs about as much as
 *   abort-controller-x's `race`.)
 * - The first task to **fulfil** wins. In the same tick, every task still
 *   running has its signal aborted with an `AbortError` naming the race (its
 *   nested loopsafe calls stop with it), and the race fulfils without waiting
 *   for them: a loser that ignores its signal cannot delay the result, and its
 *   late outcome is absorbed — never an `unhandledRejection`. The winner's
 *   signal never aborts. A task that fulfils synchronously wins before the
 *   tasks after it are started (they never run).
 * - A task that rejects is out of the race; when every task has rejected, the
 *   race rejects with a {@link GatherError} whose `errors` are their failures
 *   in the order they happened (`cause` is the first).
 * - `signal` aborting rejects with its reason (`===`); the race's own
 *   `timeout`, or an enclosing deadline, rejects with that scope's
 *   {@link TimeoutError}; either way every task is aborted.
 * - Unlike `Promise.race`, a rejection never wins (that is
 *   `Promise.any`'s rule), and the tasks are functions, so the losers can be
 *   told to stop.
 *
 * @param tasks - A non-empty iterable of functions `(signal) => value | promise`.
 * @param options - `signal`, `timeout`, `name`, `clock`.
 * @returns The first value a task fulfils with.
 * @throws {@link GatherError} (rejection) when every task rejected.
 * @throws {@link TimeoutError} (rejection) at the race's timeout or an enclosing deadline; the caller's reason when `signal` aborts.
 * @throws `TypeError`/`RangeError` (synchronously) for a non-iterable, a non-function task, **no task at all** (a race of nothing would never settle), or a bad option.
 * @category Resilience policies
 * @example
 * ```ts
 * import { safeRace, safeSleep } from 'loopsafe';
 *
 * const replica = (name: string, ms: number) => async (signal: AbortSignal) => {
 *   await safeSleep(ms, { signal });
 *   return name;
 * };
 * const stopped: string[] = [];
 * const slow = async (signal: AbortSignal) => {
 *   signal.addEventListener('abort', () => stopped.push('eu-west'));
 *   await safeSleep(1_000, { signal });
 *   return 'eu-west';
 * };
 * const winner = await safeRace([slow, replica('us-east', 10), () => Promise.reject(new Error('down'))], {
 *   timeout: 500,
 * });
 * console.log(winner, stopped); // 'us-east' ['eu-west']
 * ```
 */
export function safeRace<const Tasks extends readonly GatherTask[]>(
  tasks: Tasks,
  options?: RaceOptions,
): Promise<RaceResult<Tasks>>;
export function safeRace<T>(tasks: Iterable<GatherTask<T>>, options?: RaceOptions): Promise<Awaited<T>>;
export function safeRace(tasks: Iterable<GatherTask>, options?: RaceOptions): Promise<unknown> {
  let list: readonly unknown[];
  if (Array.isArray(tasks)) list = tasks;
  else if (
    typeof tasks === 'object' &&
    typeof (tasks as Partial<Iterable<unknown>> | null)?.[Symbol.iterator] === 'function'
  ) {
    list = Array.from(tasks);
  } else {
    throw new TypeError(`Expected \`tasks\` to be an iterable of functions, got ${describe(tasks)}`);
  }
  if (list.length === 0) {
    throw new RangeError('Expected `tasks` to hold at least one function, got none: a race of nothing never settles');
  }
  for (let i = 0; i < list.length; i++) {
    if (typeof list[i] !== 'function') {
      throw new TypeError(
        `Expected \`tasks[${String(i)}]\` to be a function (signal) => value, got ${describe(list[i])}`,
      );
    }
  }
  assertOptions('safeRace', options, RACE_OPTIONS);
  let timeout = Number.POSITIVE_INFINITY;
  if (options !== undefined) {
    if (options.timeout !== undefined) {
      assertDuration('timeout', options.timeout);
      timeout = options.timeout;
    }
    assertSignal('signal', options.signal);
    assertClock('clock', options.clock);
    assertOptionalString('name', options.name);
  }
  const name = options?.name ?? 'safeRace';
  const signal = options?.signal;
  // Nothing can cancel this race (no timeout, no signal, no enclosing scope): it opens no scope, and
  // its tasks' scopes are roots.
  const scope =
    timeout === Number.POSITIVE_INFINITY && signal === undefined && ambientScope() === undefined
      ? undefined
      : openScope({ name, timeoutMs: timeout, signal, clock: options?.clock });
  return new Race<unknown>(scope, name, scope === undefined ? options?.clock : undefined, list.length).run(
    list as readonly GatherTask[],
  );
}
