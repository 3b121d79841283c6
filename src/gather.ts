/**
 * `safeGather` and `safeGatherSettled`: run task functions with bounded
 * concurrency inside one scope — results in input order, fail-fast sibling
 * cancellation, and partial results at a deadline.
 *
 * @module
 */
import type { Clock } from './clock.js';
import { GatherError } from './errors.js';
import {
  adopt,
  enterScope,
  openChild,
  openScope,
  traceScope,
  tracingScopes,
  type ScopeNode,
} from './internal/engine/index.js';
import { runSoon } from './internal/platform.js';
import { publishGatherCancel } from './internal/publish.js';
import { createDeferred, rejectAtCaller } from './internal/stacks.js';
import {
  assertClock,
  assertCount,
  assertDuration,
  assertOptionalString,
  assertOptions,
  assertSignal,
  describe,
} from './internal/validate.js';

/**
 * One task of a gather: receives a signal that aborts when the task must stop
 * (a sibling failed, the gather timed out, the caller aborted or an enclosing
 * deadline passed) and returns a value or a promise.
 *
 * @category Primitives
 */
export type GatherTask<T = unknown> = (signal: AbortSignal) => T | PromiseLike<T>;

/**
 * The results of {@link safeGather} for an array or tuple of tasks, in input order.
 *
 * @category Primitives
 */
export type GatherResults<Tasks extends readonly GatherTask[]> = {
  -readonly [K in keyof Tasks]: Tasks[K] extends (...args: never[]) => infer R ? Awaited<R> : never;
};

/**
 * The results of {@link safeGatherSettled} for an array or tuple of tasks, in input order.
 *
 * @category Primitives
 */
export type GatherSettledResults<Tasks extends readonly GatherTask[]> = {
  -readonly [K in keyof Tasks]: PromiseSettledResult<GatherResults<Tasks>[K]>;
};

/**
 * Options for {@link safeGather} and {@link safeGatherSettled}.
 *
 * @category Primitives
 */
export interface GatherOptions {
  /**
   * The most tasks running at once: an integer ≥ 1, or `Infinity`.
   * @defaultValue `Infinity`
   */
  concurrency?: number | undefined;
  /**
   * Milliseconds for the whole gather (bounded by the ambient deadline too).
   * @defaultValue `Infinity`
   */
  timeout?: number | undefined;
  /** Aborts the gather and every task; the gather rejects with the signal's reason (`===`). */
  signal?: AbortSignal | undefined;
  /**
   * Names the gather's scope (its {@link TimeoutError}, {@link pendingScopes});
   * task `i`, when it outlives the gather, is listed as `` `${name}[${i}]` ``.
   * @defaultValue `'safeGather'` / `'safeGatherSettled'`
   */
  name?: string | undefined;
  /** @defaultValue the ambient scope's clock, else {@link systemClock} */
  clock?: Clock | undefined;
}

const GATHER_OPTIONS = new Set(['concurrency', 'timeout', 'signal', 'name', 'clock']);

/** Marks a settled-mode entry whose task has not finished. */
const PENDING = Symbol('pending');

/**
 * Runs task functions with at most `concurrency` at once and fulfils with
 * their values in input order.
 *
 * - Tasks are pulled from `tasks` lazily, one as another finishes, so a
 *   generator of a million tasks holds only `concurrency` of them in flight.
 * - Every task runs inside the gather's scope (it is the ambient scope there,
 *   so the gather's deadline reaches every nested loopsafe call), and gets a
 *   signal of its own that aborts when the gather stops it — a signal per
 *   task, so listeners a task leaves on it die with the task. A task still
 *   running after the gather stopped it (it ignored its signal) is listed by
 *   {@link pendingScopes} and the stall watchdog as `` `${name}[${i}]` ``.
 * - Fail-fast: the first task to fail aborts every running sibling in the same
 *   tick (their signals abort with an `AbortError` naming the gather), starts
 *   no new task, and the gather rejects at once with a {@link GatherError}
 *   whose `cause` is that failure. Since the gather stops at the first
 *   failure, `errors` holds the failures observed until then — that one. The
 *   cancellations the gather causes are never reported as failures. A sibling
 *   that ignores its signal cannot hold the gather open; its late settlement
 *   is absorbed.
 * - A non-function pulled from a lazy iterable, or an iterable that throws,
 *   stops the gather the same way and rejects with that `TypeError`/error.
 * - `signal` aborting rejects with its reason (`===`); the gather's own
 *   `timeout` rejects with its {@link TimeoutError}; either way every task is aborted.
 *
 * @param tasks - An iterable of functions `(signal) => value | promise`.
 * @param options - `concurrency`, `timeout`, `signal`, `name`, `clock`.
 * @returns The tasks' values, in input order (`[]` for no tasks).
 * @throws {@link GatherError} (rejection) when a task fails.
 * @throws {@link TimeoutError} (rejection) at the gather's timeout; the caller's reason when `signal` aborts.
 * @throws `TypeError`/`RangeError` (synchronously) for a non-iterable, a non-function task in an array, a bad `concurrency` or option.
 * @category Primitives
 * @example
 * ```ts
 * import { safeGather, safeSleep, GatherError } from 'loopsafe';
 *
 * const ids = [1, 2, 3, 4, 5];
 * const users = await safeGather(
 *   ids.map((id) => async (signal: AbortSignal) => {
 *     await safeSleep(5 * (6 - id), { signal });
 *     return `user-${id}`;
 *   }),
 *   { concurrency: 2, timeout: 1_000 },
 * );
 * console.log(users); // ['user-1', 'user-2', 'user-3', 'user-4', 'user-5']
 *
 * try {
 *   await safeGather([
 *     () => safeSleep(60_000), // aborted as soon as its sibling fails
 *     () => Promise.reject(new Error('db down')),
 *   ]);
 * } catch (error) {
 *   if (error instanceof GatherError) console.log((error.cause as Error).message); // 'db down'
 * }
 * ```
 */
export function safeGather<const Tasks extends readonly GatherTask[]>(
  tasks: Tasks,
  options?: GatherOptions,
): Promise<GatherResults<Tasks>>;
export function safeGather<T>(tasks: Iterable<GatherTask<T>>, options?: GatherOptions): Promise<Awaited<T>[]>;
export function safeGather(tasks: Iterable<GatherTask>, options?: GatherOptions): Promise<unknown[]> {
  return gather(tasks, options, 'safeGather', false);
}

/**
 * Runs task functions like {@link safeGather}, but never rejects because a
 * task failed: fulfils with one `{ status: 'fulfilled', value }` or
 * `{ status: 'rejected', reason }` per task, in input order.
 *
 * At its own `timeout` it fulfils promptly with what has finished: every
 * unfinished task is aborted and its entry is `rejected` with the
 * {@link TimeoutError} — partial results at the deadline. (For an array, tasks
 * not yet started get that entry too; another iterable is not pulled further,
 * so its entries stop at the last task pulled.) `signal` aborting, or an
 * enclosing deadline passing, still rejects with that reason.
 *
 * @param tasks - An iterable of functions `(signal) => value | promise`.
 * @param options - `concurrency`, `timeout`, `signal`, `name`, `clock`.
 * @returns One settled entry per task, in input order.
 * @throws the caller's reason (rejection) when `signal` aborts; an enclosing scope's {@link TimeoutError} when its deadline passes.
 * @throws `TypeError`/`RangeError` (synchronously) for a non-iterable, a non-function task in an array, a bad `concurrency` or option.
 * @category Primitives
 * @example
 * ```ts
 * import { safeGatherSettled } from 'loopsafe';
 *
 * const upstream = (ms: number, value: string) => (signal: AbortSignal) =>
 *   new Promise<string>((resolve, reject) => {
 *     const timer = setTimeout(() => resolve(value), ms);
 *     signal.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
 *   });
 *
 * const results = await safeGatherSettled(
 *   [upstream(5, 'prices'), upstream(10_000, 'reviews'), () => Promise.reject(new Error('stock down'))],
 *   { timeout: 50 },
 * );
 * console.log(results.map((r) => r.status)); // ['fulfilled', 'rejected', 'rejected']
 * console.log(results[1].status === 'rejected' && (results[1].reason as Error).name); // 'TimeoutError'
 * ```
 */
export function safeGatherSettled<const Tasks extends readonly GatherTask[]>(
  tasks: Tasks,
  options?: GatherOptions,
): Promise<GatherSettledResults<Tasks>>;
export function safeGatherSettled<T>(
  tasks: Iterable<GatherTask<T>>,
  options?: GatherOptions,
): Promise<PromiseSettledResult<Awaited<T>>[]>;
export function safeGatherSettled(tasks: Iterable<GatherTask>, options?: GatherOptions): Promise<unknown[]> {
  return gather(tasks, options, 'safeGatherSettled', true);
}

function gather(
  tasks: Iterable<GatherTask>,
  options: GatherOptions | undefined,
  fnName: string,
  settled: boolean,
): Promise<unknown[]> {
  const isArray = Array.isArray(tasks);
  if (isArray) {
    for (let i = 0; i < tasks.length; i++) assertTask(`tasks[${String(i)}]`, tasks[i]);
  } else if (
    typeof tasks !== 'object' ||
    typeof (tasks as Partial<Iterable<unknown>> | null)?.[Symbol.iterator] !== 'function'
  ) {
    throw new TypeError(`Expected \`tasks\` to be an iterable of functions, got ${describe(tasks)}`);
  }
  assertOptions(fnName, options, GATHER_OPTIONS);
  const concurrency = options?.concurrency === undefined ? Number.POSITIVE_INFINITY : options.concurrency;
  assertCount('concurrency', concurrency);
  const timeout = options?.timeout === undefined ? Number.POSITIVE_INFINITY : options.timeout;
  assertDuration('timeout', timeout);
  if (options !== undefined) {
    assertSignal('signal', options.signal);
    assertClock('clock', options.clock);
    assertOptionalString('name', options.name);
  }
  const iterator = tasks[Symbol.iterator]();
  const scope = openScope({
    name: options?.name ?? fnName,
    named: options?.name !== undefined,
    timeoutMs: timeout,
    signal: options?.signal,
    clock: options?.clock,
  });
  const run = new Gather(scope, iterator, concurrency, settled, isArray ? tasks.length : -1);
  // Traced on `loopsafe:scope` like every scope: the tasks start inside the tracing stores.
  return tracingScopes() ? traceScope(scope, () => run.start()) : run.start();
}

/**
 * One gather in progress: pulls tasks, runs them inside the gather's scope,
 * collects results. Each task gets an AbortController of its own, owned by the
 * gather, which aborts the running ones when it stops; a task still running a
 * macrotask after that (it ignored its signal) gets a cancelled child scope
 * named `name[i]`, so `pendingScopes()` and the stall watchdog list it until
 * it settles. A task that behaves costs the tree nothing.
 */
class Gather {
  readonly #scope: ScopeNode;
  readonly #iterator: Iterator<unknown>;
  readonly #limit: number;
  readonly #settled: boolean;
  /** Number of tasks when the input is an array, else -1. */
  readonly #length: number;
  readonly #results: unknown[] = [];
  /** The controller of each running task, by index (`undefined` once it settled). */
  readonly #controllers: (AbortController | undefined)[] = [];
  /** The scopes that list tasks still running after the gather stopped, by index. */
  #zombies: (ScopeNode | undefined)[] | undefined = undefined;
  readonly #promise: Promise<unknown[]>;
  #resolve!: (results: unknown[]) => void;
  #reject!: (reason: unknown) => void;
  #active = 0;
  #exhausted = false;
  #done = false;

  constructor(scope: ScopeNode, iterator: Iterator<unknown>, limit: number, settled: boolean, length: number) {
    this.#scope = scope;
    this.#iterator = iterator;
    this.#limit = limit;
    this.#settled = settled;
    this.#length = length;
    this.#promise = new Promise<unknown[]>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  start(): Promise<unknown[]> {
    const scope = this.#scope;
    if (scope.cancelled) {
      this.#stopped(scope.reason);
    } else {
      scope.onAbort((reason) => {
        this.#stopped(reason);
      });
      // Tasks start inside the gather's scope: the ones started later, from the
      // reactions to earlier tasks, inherit it from the promise chain, so no task
      // pays for an async context of its own.
      void enterScope(scope, pumpGather, this);
    }
    return this.#promise;
  }

  /**
   * Starts tasks until the limit is reached or the input runs out, and
   * settles when every task is done. A loop, not a recursion: a task that
   * settles synchronously is recorded on the spot and the loop goes on, so a
   * long run of synchronous tasks costs no stack, and outcomes are seen in the
   * order they happened.
   */
  pump(): void {
    while (!this.#done && !this.#exhausted && this.#active < this.#limit) {
      let step: IteratorResult<unknown>;
      try {
        step = this.#iterator.next();
      } catch (error) {
        this.#fail(error);
        return;
      }
      if (step.done === true) {
        this.#exhausted = true;
        break;
      }
      const task = step.value;
      const index = this.#results.length;
      if (typeof task !== 'function') {
        this.#fail(new TypeError(`Expected \`tasks[${String(index)}]\` to be a function, got ${describe(task)}`));
        return;
      }
      this.#start(task as GatherTask, index);
    }
    if (!this.#done && this.#exhausted && this.#active === 0) {
      this.#end();
      this.#resolve(this.#results);
    }
  }

  #start(task: GatherTask, index: number): void {
    this.#results.push(this.#settled ? PENDING : undefined);
    this.#active++;
    const controller = new AbortController();
    this.#controllers[index] = controller;
    let result: unknown;
    try {
      result = adopt(task(controller.signal));
    } catch (error) {
      this.#controllers[index] = undefined;
      this.#failed(index, error);
      return;
    }
    if (!(result instanceof Promise)) {
      this.#controllers[index] = undefined;
      this.#fulfilled(index, result);
      return;
    }
    void result.then(
      (value: unknown) => {
        this.#taskSettled(index);
        if (this.#fulfilled(index, value)) this.pump();
      },
      (error: unknown) => {
        this.#taskSettled(index);
        if (this.#failed(index, error)) this.pump();
      },
    );
  }

  #taskSettled(index: number): void {
    this.#controllers[index] = undefined;
    const zombies = this.#zombies;
    if (zombies === undefined) return;
    zombies[index]?.exit();
    zombies[index] = undefined;
  }

  /** Records a value; returns whether the gather goes on. */
  #fulfilled(index: number, value: unknown): boolean {
    if (this.#done) return false;
    this.#active--;
    this.#results[index] = this.#settled ? { status: 'fulfilled', value } : value;
    return true;
  }

  /**
   * Records a failure; returns whether the gather goes on. Once the gather is
   * done, every outcome is absorbed: in particular the cancellations it caused
   * itself never count as failures.
   */
  #failed(index: number, error: unknown): boolean {
    if (this.#done) return false;
    this.#active--;
    if (this.#settled) {
      this.#results[index] = { status: 'rejected', reason: error };
      return true;
    }
    this.#fail(
      createDeferred(() => new GatherError([error])),
      error,
    );
    return false;
  }

  /**
   * Fail-fast: aborts every running task at once, starts no new one, then
   * rejects with `reason` (`failure` is what failed, for the diagnostics channel).
   */
  #fail(reason: unknown, failure: unknown = reason): void {
    this.#done = true;
    const scope = this.#scope;
    publishGatherCancel(scope.name, 'failure', failure, this.#active);
    // The rejection is queued first and the siblings aborted right after, synchronously: the
    // caller sees it once every running sibling's signal has aborted, and before the reactions
    // to the cancellations they then settle with (there may be 10,000 of those).
    rejectAtCaller(this.#resolve, this.#reject, reason);
    // Leave first, so our own abort is not taken for one from outside.
    scope.exit();
    // Made without a stack (it would only show this line): the siblings need its name and message.
    const cancellation = createDeferred(
      () => new DOMException(`${scope.name} was cancelled: a sibling task failed`, 'AbortError'),
    );
    scope.cancel(cancellation);
    this.#abortRunning(cancellation);
    this.#closeInput();
  }

  /** The gather's scope was cancelled from outside (caller signal, own timeout, enclosing scope). */
  #stopped(reason: unknown): void {
    if (this.#done) return;
    this.#done = true;
    const scope = this.#scope;
    const ownTimeout = scope.timedOut && reason === scope.reason;
    publishGatherCancel(scope.name, ownTimeout ? 'timeout' : 'abort', reason, this.#active);
    scope.exit();
    this.#abortRunning(reason);
    this.#closeInput();
    if (!this.#settled || !ownTimeout) {
      rejectAtCaller(this.#resolve, this.#reject, reason);
      return;
    }
    const results = this.#results;
    for (let i = 0; i < results.length; i++) {
      if (results[i] === PENDING) results[i] = { status: 'rejected', reason };
    }
    for (let i = results.length; i < this.#length; i++) results.push({ status: 'rejected', reason });
    this.#resolve(results);
  }

  /** Aborts the signal of every task still running; those still running a macrotask later are listed. */
  #abortRunning(reason: unknown): void {
    const controllers = this.#controllers;
    let running = false;
    for (let i = 0; i < controllers.length; i++) {
      const controller = controllers[i];
      if (controller === undefined) continue;
      running = true;
      controller.abort(reason);
    }
    if (running)
      runSoon(() => {
        this.#listStillRunning();
      });
  }

  /** Gives each task that ignored its signal a cancelled scope, `name[i]`, until it settles. */
  #listStillRunning(): void {
    const scope = this.#scope;
    const controllers = this.#controllers;
    for (let i = 0; i < controllers.length; i++) {
      if (controllers[i] === undefined) continue;
      // Born cancelled (the gather's scope is): listed as overdue, held weakly, left when the task settles.
      (this.#zombies ??= [])[i] = openChild(scope, { name: `${scope.name}[${String(i)}]` });
    }
  }

  /** Leaves the scope and closes the input, before the gather's promise settles. */
  #end(): void {
    this.#done = true;
    this.#scope.exit();
    this.#closeInput();
  }

  #closeInput(): void {
    if (this.#exhausted) return;
    this.#exhausted = true;
    try {
      this.#iterator.return?.();
    } catch {
      // A generator that is running (it aborted the gather from inside `next()`) cannot be closed.
    }
  }
}

function pumpGather(gather: Gather): void {
  gather.pump();
}

function assertTask(name: string, value: unknown): void {
  if (typeof value !== 'function') {
    throw new TypeError(`Expected \`${name}\` to be a function (signal) => value, got ${describe(value)}`);
  }
}
