/**
 * `Mutex`: a {@link Semaphore} with one permit.
 *
 * @module
 */
import { Semaphore, type SemaphoreOptions } from './semaphore.js';

/**
 * A mutual-exclusion lock: a {@link Semaphore} with a single permit, with the
 * same FIFO fairness, abortable and deadline-aware `acquire()`, `tryAcquire()`,
 * `run()` and disposable permits.
 *
 * @category Primitives
 * @example
 * ```ts
 * import { Mutex, safeSleep } from 'loopsafe';
 *
 * const lock = new Mutex();
 * const log: string[] = [];
 * const write = (line: string) => lock.run(async () => {
 *   log.push(`start ${line}`);
 *   await safeSleep(2);
 *   log.push(`end ${line}`);
 * });
 * await Promise.all([write('a'), write('b')]);
 * console.log(log); // ['start a', 'end a', 'start b', 'end b']
 *
 * using permit = lock.tryAcquire();
 * console.log(permit !== undefined, lock.locked); // true true
 * ```
 */
export class Mutex extends Semaphore {
  /**
   * @param options - `name`, `maxQueue` (as {@link Semaphore}'s).
   * @throws `TypeError`/`RangeError` (synchronously) for a bad option.
   */
  constructor(options?: SemaphoreOptions) {
    super(1, options);
  }

  /** `true` while the lock is held. */
  get locked(): boolean {
    return this.available === 0;
  }
}
