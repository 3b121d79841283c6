/**
 * The platform's TracingChannel where the runtime's has no `hasSubscribers`
 * of its own, or no `tracingChannel` at all: built from the five named
 * channels, `hasSubscribers` read from each of them, stores still bound.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import realChannels from 'node:diagnostics_channel';
import { describe, expect, it, vi } from 'vitest';

vi.mock('node:diagnostics_channel', async (importOriginal) => {
  const real = (await importOriginal<{ default: typeof realChannels }>()).default;
  // A runtime without `tracingChannel` (as Node before 19.9; Bun and Deno at some versions).
  const stripped = { channel: real.channel, subscribe: real.subscribe, unsubscribe: real.unsubscribe };
  return { default: stripped, ...stripped };
});

const { traceChannels } = await import('../../src/internal/platform.js');

describe('traceChannels without a native TracingChannel', () => {
  it('reads hasSubscribers from each of the five channels', () => {
    const channels = traceChannels('loopsafe-test:fallback');
    expect(channels.hasSubscribers).toBe(false);
    for (const event of ['start', 'end', 'asyncStart', 'asyncEnd', 'error']) {
      const listener = (): void => undefined;
      realChannels.subscribe(`tracing:loopsafe-test:fallback:${event}`, listener);
      expect(channels.hasSubscribers).toBe(true);
      realChannels.unsubscribe(`tracing:loopsafe-test:fallback:${event}`, listener);
      expect(channels.hasSubscribers).toBe(false);
    }
  });

  it('publishes on the named channels and runs the stores bound to start', () => {
    const channels = traceChannels('loopsafe-test:stores');
    const als = new AsyncLocalStorage<string>();
    const start = realChannels.channel('tracing:loopsafe-test:stores:start');
    start.bindStore(als, (message) => (message as { id: string }).id);
    const seen: unknown[] = [];
    const listener = (message: unknown): void => {
      seen.push(message);
    };
    realChannels.subscribe('tracing:loopsafe-test:stores:end', listener);
    try {
      expect(channels.hasSubscribers).toBe(true);
      expect(channels.start.runStores({ id: 'a' }, () => als.getStore())).toBe('a');
      channels.end.publish({ id: 'b' });
      expect(seen).toEqual([{ id: 'b' }]);
    } finally {
      start.unbindStore(als);
      realChannels.unsubscribe('tracing:loopsafe-test:stores:end', listener);
    }
    expect(channels.hasSubscribers).toBe(false);
  });
});
