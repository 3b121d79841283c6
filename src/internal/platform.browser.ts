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
import type { ContextStorage, LoopDelayHistogram, PublishChannel, RuntimeName } from './platform-types.js';

export type { ContextStorage, LoopDelayHistogram, PublishChannel, RuntimeName } from './platform-types.js';

export const runtime: RuntimeName = 'browser';

const noContext: ContextStorage<never> = {
  getStore: () => undefined,
  run: (_store, callback, ...args) => callback(...args),
};

export function createContextStorage<T>(): ContextStorage<T> {
  return noContext;
}

const silent: PublishChannel = { hasSubscribers: false, publish: () => undefined };

export function publishChannel(_name: string): PublishChannel {
  return silent;
}

/** The DOM's `MessageChannel`, as far as {@link runSoon} uses it. */
interface BrowserMessageChannel {
  readonly port1: { onmessage: (() => void) | null; close(): void };
  readonly port2: { postMessage(message: unknown): void };
}

/**
 * Runs `callback` in a later macrotask: a `MessageChannel` message, which
 * browsers do not clamp the way they clamp nested `setTimeout(0)` to 4 ms.
 */
export function runSoon(callback: () => void): void {
  const { setImmediate } = globalThis as unknown as { setImmediate?: (callback: () => void) => unknown };
  if (typeof setImmediate === 'function') {
    setImmediate(callback);
    return;
  }
  const { MessageChannel } = globalThis as unknown as { MessageChannel?: new () => BrowserMessageChannel };
  if (typeof MessageChannel === 'function') {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      callback();
    };
    port2.postMessage(undefined);
    return;
  }
  setTimeout(callback, 0);
}

export const nativeLoopDelay: ((resolutionMs: number) => LoopDelayHistogram) | undefined = undefined;

export const loopUtilization: (() => () => number) | undefined = undefined;
