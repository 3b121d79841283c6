/**
 * The shape of a deadlock scenario: the naive code a real service would write
 * and the loopsafe version, each run in a fresh child process by bench/demo.ts.
 */

/** Counts units of work (upstream calls, loops) that have started and not yet stopped. */
export class WorkTracker {
  started = 0;
  ended = 0;
  /** Marks a unit started; call the returned function (idempotent) when it stops for any reason. */
  start(): () => void {
    this.started++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.ended++;
    };
  }
  get running(): number {
    return this.started - this.ended;
  }
}

export interface RunContext {
  /** The service's long-lived signal (its shutdown signal): listeners left on it are counted. */
  readonly parent: AbortSignal;
  readonly work: WorkTracker;
  /** Records a scenario-specific measurement. */
  metric(name: string, value: string | number): void;
  /** Records a failed expectation (only the loopsafe variant's failures fail the run). */
  fail(message: string): void;
  /** The watchdog's limit for this run, in ms. */
  readonly watchdogMs: number;
}

export interface Variant {
  readonly label: string;
  /** Resolves or rejects when the code under test does; a string result is shown as the outcome. */
  run(ctx: RunContext): Promise<unknown>;
  /** For loopsafe: the most ms the run may take to count as bounded. */
  readonly maxMs?: number;
  /** Ms to wait after settling before counting what is left (default 20). */
  readonly graceMs?: number;
}

export interface Scenario {
  readonly id: string;
  readonly title: string;
  readonly naive: Variant;
  readonly loopsafe: Variant;
  /** Default 1,000 ms. */
  readonly watchdogMs?: number;
}

/**
 * A simulated upstream call that takes `ms` (Infinity: never answers) and then
 * fulfils (or rejects with `fail`). With a signal it stops at once when the
 * signal aborts, like `fetch` does; without one it cannot be stopped.
 */
export function upstream<T>(ctx: RunContext, ms: number, value: T, signal?: AbortSignal, fail?: Error): Promise<T> {
  const end = ctx.work.start();
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted === true) {
      end();
      reject(signal.reason);
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      clearTimeout(timer);
      end();
      reject(signal?.reason);
    };
    if (Number.isFinite(ms)) {
      timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        end();
        if (fail === undefined) resolve(value);
        else reject(fail);
      }, ms);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
export const nextMacrotask = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
