/**
 * The types both platform modules (`platform.ts` for server runtimes,
 * `platform.browser.ts` for browsers) implement.
 *
 * @internal
 * @module
 */

/** A value that follows the async context: the subset of `AsyncLocalStorage` loopsafe uses. */
export interface ContextStorage<T> {
  getStore(): T | undefined;
  run<R, A extends unknown[]>(store: T, callback: (...args: A) => R, ...args: A): R;
}

/** A named diagnostics channel: the subset of `diagnostics_channel.Channel` loopsafe uses. */
export interface PublishChannel {
  readonly hasSubscribers: boolean;
  publish(message: unknown): void;
}

/** A channel whose publication can run a function with the stores bound to it (`Channel.runStores`). */
export interface StoreChannel extends PublishChannel {
  runStores<R>(message: unknown, fn: () => R): R;
}

/**
 * The five channels of a `diagnostics_channel` TracingChannel, and whether any
 * of them has a subscriber or a bound store (one property read).
 */
export interface TraceChannels {
  readonly hasSubscribers: boolean;
  readonly start: StoreChannel;
  readonly end: PublishChannel;
  readonly asyncStart: PublishChannel;
  readonly asyncEnd: PublishChannel;
  readonly error: PublishChannel;
}

/** The subset of Node's `IntervalHistogram` the event-loop monitor reads (nanoseconds). */
export interface LoopDelayHistogram {
  readonly count: number;
  readonly max: number;
  percentile(percentile: number): number;
  enable(): boolean;
  disable(): boolean;
  reset(): void;
}
