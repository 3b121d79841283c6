/**
 * What loopsafe needs from its host, for server runtimes: Node.js, and Bun and
 * Deno through their `node:` modules. The browser build swaps this module for
 * `platform.browser.ts` (see `tsup.config.ts`), which needs no `node:` module.
 * Both export the same names with the same types.
 *
 * @internal
 * @module
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import diagnosticsChannel from 'node:diagnostics_channel';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { clearTimeout as platformClearTimeout, setImmediate, setTimeout as platformSetTimeout } from 'node:timers';
import type { ContextStorage, LoopDelayHistogram, PublishChannel, TraceChannels } from './platform-types.js';

export type { ContextStorage, LoopDelayHistogram, PublishChannel, TraceChannels } from './platform-types.js';

const host = globalThis as { Bun?: unknown; Deno?: unknown };

/** Node itself, not Bun or Deno running this build through their `node:` modules. */
const isNode = host.Bun === undefined && host.Deno === undefined;

/** Storage for a value that follows the async context (an `AsyncLocalStorage`). */
export function createContextStorage<T>(): ContextStorage<T> {
  return new AsyncLocalStorage<T>();
}

/** The named `node:diagnostics_channel` channel (shared by every copy of the library in the process). */
export function publishChannel(name: string): PublishChannel {
  return diagnosticsChannel.channel(name);
}

/**
 * The named TracingChannel (`tracing:${name}:start`, `:end`, `:asyncStart`,
 * `:asyncEnd`, `:error`), the same channel objects as
 * `diagnostics_channel.tracingChannel(name)` gives a subscriber. Where the
 * TracingChannel has no `hasSubscribers` of its own (Node before 20.13 and
 * 22.0; a runtime without `tracingChannel`), it is read from the five channels.
 */
export function traceChannels(name: string): TraceChannels {
  const dc = diagnosticsChannel as Partial<typeof diagnosticsChannel>;
  const native = dc.tracingChannel?.(name) as unknown as Partial<TraceChannels> | undefined;
  if (native !== undefined && typeof native.hasSubscribers === 'boolean') return native as TraceChannels;
  const channel = (event: string) => diagnosticsChannel.channel(`tracing:${name}:${event}`);
  const start = channel('start') as unknown as TraceChannels['start'] &
    Partial<Pick<TraceChannels['start'], 'runStores'>>;
  const end = channel('end');
  const asyncStart = channel('asyncStart');
  const asyncEnd = channel('asyncEnd');
  const error = channel('error');
  const runStores: TraceChannels['start']['runStores'] =
    typeof start.runStores === 'function'
      ? (message, fn) => start.runStores(message, fn)
      : (message, fn) => {
          start.publish(message);
          return fn();
        };
  return {
    get hasSubscribers() {
      return (
        start.hasSubscribers ||
        end.hasSubscribers ||
        asyncStart.hasSubscribers ||
        asyncEnd.hasSubscribers ||
        error.hasSubscribers
      );
    },
    start: {
      get hasSubscribers() {
        return start.hasSubscribers;
      },
      publish: (message) => {
        start.publish(message);
      },
      runStores,
    },
    end,
    asyncStart,
    asyncEnd,
    error,
  };
}

const rootSnapshot = /* @__PURE__ */ (() =>
  (
    AsyncLocalStorage as { snapshot?: () => <R, A extends unknown[]>(fn: (...args: A) => R, ...args: A) => R }
  ).snapshot?.())();

/**
 * Wraps `callback` so that it runs in the async context this module was loaded
 * in (the root context, with every `AsyncLocalStorage` empty), wherever it is
 * called from: the engine's shared deadline timer fires for many scopes, and
 * none of them should see the context of whichever call happened to arm it.
 */
export function inRootContext<A extends unknown[], R>(callback: (...args: A) => R): (...args: A) => R {
  const snapshot = rootSnapshot;
  return snapshot === undefined ? callback : (...args: A) => snapshot(callback, ...args);
}

/**
 * The platform's own `setTimeout`, as it was when loopsafe loaded: fake-timer
 * tools replace the global one, and a timer armed through theirs may be
 * dropped when they are uninstalled.
 */
export const nativeSetTimeout: (callback: () => void, delayMs: number) => unknown = platformSetTimeout;

/** The platform's own `clearTimeout`, for timers armed through {@link nativeSetTimeout}. */
export const nativeClearTimeout: (handle: unknown) => void = platformClearTimeout as (handle: unknown) => void;

/** Runs `callback` in the next check phase of the event loop. */
export function runSoon(callback: () => void): void {
  setImmediate(callback);
}

/**
 * Node's native lag histogram, or `undefined` where the runtime's
 * `monitorEventLoopDelay` does not measure the same thing: Bun's leaves the
 * resolution out of its figures and Deno's does not see a blocked loop at all
 * (both measured: Bun 1.4, Deno 2.9), so those use loopsafe's timer sampler.
 */
export const nativeLoopDelay: ((resolutionMs: number) => LoopDelayHistogram) | undefined = isNode
  ? (resolutionMs) => monitorEventLoopDelay({ resolution: resolutionMs })
  : undefined;

/**
 * A reader of the loop's busy share since the previous read, or `undefined`
 * where the runtime does not measure it (Bun and Deno report zeros).
 */
export const loopUtilization: (() => () => number) | undefined = isNode
  ? () => {
      let last = performance.eventLoopUtilization();
      return () => {
        const now = performance.eventLoopUtilization();
        const { utilization } = performance.eventLoopUtilization(now, last);
        last = now;
        return utilization;
      };
    }
  : undefined;
