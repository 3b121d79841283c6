/**
 * What loopsafe needs from its host, for browsers and other runtimes without
 * `node:` modules. Replaces `platform.ts` in the browser build (see
 * `tsup.config.ts`); same names, same types.
 *
 * - No `AsyncLocalStorage`: the ambient scope is never set, so `currentScope()`
 *   is `undefined` and work reaches its deadline through the signal it is
 *   handed (`withTimeout(ms, (scope) => fetch(url, { signal: scope.signal }))`).
 * - No `diagnostics_channel`: nothing is published.
 * - No lag histogram or utilisation: the event-loop monitor samples lag with a
 *   timer and reports utilisation as `0`.
 *
 * @internal
 * @module
 */
import type { ContextStorage, LoopDelayHistogram, PublishChannel, TraceChannels } from './platform-types.js';

export type { ContextStorage, LoopDelayHistogram, PublishChannel, TraceChannels } from './platform-types.js';

const noContext: ContextStorage<never> = {
  getStore: () => undefined,
  run: (_store, callback, ...args) => callback(...args),
};

export function createContextStorage<T>(): ContextStorage<T> {
  return noContext;
}

/** There is no async context to leave. */
export function inRootContext<A extends unknown[], R>(callback: (...args: A) => R): (...args: A) => R {
  return callback;
}

/** The platform's own `setTimeout`, as it was when loopsafe loaded (see platform.ts). */
export const nativeSetTimeout: (callback: () => void, delayMs: number) => unknown = globalThis.setTimeout;

/** The platform's own `clearTimeout`, as it was when loopsafe loaded. */
export const nativeClearTimeout: (handle: unknown) => void = globalThis.clearTimeout as (handle: unknown) => void;

const silent: PublishChannel = { hasSubscribers: false, publish: () => undefined };

export function publishChannel(_name: string): PublishChannel {
  return silent;
}

const untraced: TraceChannels = {
  hasSubscribers: false,
  start: { hasSubscribers: false, publish: () => undefined, runStores: (_message, fn) => fn() },
  end: silent,
  asyncStart: silent,
  asyncEnd: silent,
  error: silent,
};

/** Nothing is traced: `hasSubscribers` is always `false`. */
export function traceChannels(_name: string): TraceChannels {
  return untraced;
}

/**
 * Runs `callback` in a later macrotask, after any timer that is already due:
 * a `setTimeout(0)`. (A `MessageChannel` message would be sooner, but Chromium
 * runs it ahead of due timers, and `yieldToEventLoop` promises that due timers
 * run first.) Browsers clamp deeply nested timers to 4 ms, so a yield there can
 * cost up to 4 ms.
 */
export function runSoon(callback: () => void): void {
  const { setImmediate } = globalThis as unknown as { setImmediate?: (callback: () => void) => unknown };
  if (typeof setImmediate === 'function') setImmediate(callback);
  else setTimeout(callback, 0);
}

export const nativeLoopDelay: ((resolutionMs: number) => LoopDelayHistogram) | undefined = undefined;

export const loopUtilization: (() => () => number) | undefined = undefined;
