/**
 * The engine on the browser platform module (no AsyncLocalStorage, no
 * diagnostics_channel, no lag histogram), run in Node by swapping the module
 * the browser build swaps. The same behaviour is checked for real in headless
 * Chromium by `npm run test:runtimes`; this keeps it in the unit suite.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { describe, expect, it, vi } from 'vitest';
import { block } from '../fixtures/observe.js';

vi.mock('../../src/internal/platform.js', () => import('../../src/internal/platform.browser.js'));
vi.mock('../../src/internal/engine/trace.js', () => import('../../src/internal/engine/trace.browser.js'));

const { currentScope, monitorEventLoop, safeSleep, withTimeout, isTimeoutError } = await import('../../src/index.js');
const platform = await import('../../src/internal/platform.browser.js');
const { createManualClock } = await import('../../src/testing.js');

describe('the browser platform', () => {
  it('has no ambient scope: currentScope() is undefined even inside withTimeout', async () => {
    const clock = createManualClock();
    const seen = await withTimeout(100, () => currentScope(), { clock });
    expect(seen).toBeUndefined();
  });

  it('still bounds work: withTimeout rejects at its deadline and aborts the signal it hands out', async () => {
    const clock = createManualClock();
    let signal: AbortSignal | undefined;
    const outcome = withTimeout(
      100,
      (scope) => {
        signal = scope.signal;
        return safeSleep(10_000, { signal: scope.signal, clock });
      },
      { clock },
    ).catch((error: unknown) => error);
    await clock.advance(100);
    const error = await outcome;
    expect(isTimeoutError(error)).toBe(true);
    expect(signal?.reason).toBe(error);
    expect(clock.pendingTimers).toBe(0);
  });

  it('does not reach a sleep given no signal (the documented caveat): it runs to its own end', async () => {
    const clock = createManualClock();
    let sleep: Promise<void> | undefined;
    const outcome = withTimeout(100, () => (sleep = safeSleep(1_000, { clock })), { clock }).catch(
      (error: unknown) => error,
    );
    await clock.advance(100);
    expect(isTimeoutError(await outcome)).toBe(true);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(900);
    await expect(sleep).resolves.toBeUndefined();
  });

  it('publishes nothing on diagnostics channels', async () => {
    const clock = createManualClock();
    const listener = vi.fn();
    diagnosticsChannel.subscribe('loopsafe:timeout', listener);
    try {
      const outcome = withTimeout(5, () => new Promise(() => undefined), { clock }).catch(() => undefined);
      await clock.advance(5);
      await outcome;
    } finally {
      diagnosticsChannel.unsubscribe('loopsafe:timeout', listener);
    }
    expect(listener).not.toHaveBeenCalled();
  });

  it('traces no scope on loopsafe:scope, even with a subscriber there, and still runs every scope', async () => {
    const scopes = diagnosticsChannel.tracingChannel('loopsafe:scope');
    const start = vi.fn();
    const asyncEnd = vi.fn();
    const none = (): void => undefined;
    const handlers = { start, end: none, asyncStart: none, asyncEnd, error: none };
    scopes.subscribe(handlers);
    try {
      const clock = createManualClock();
      await expect(withTimeout(100, () => 'ran', { name: 'named', clock })).resolves.toBe('ran');
      const timedOut = withTimeout(5, () => new Promise(() => undefined), { name: 'slow', clock }).catch(
        (error: unknown) => error,
      );
      await clock.advance(5);
      expect(isTimeoutError(await timedOut)).toBe(true);
    } finally {
      scopes.unsubscribe(handlers);
    }
    expect(start).not.toHaveBeenCalled();
    expect(asyncEnd).not.toHaveBeenCalled();
    const channels = platform.traceChannels('loopsafe:scope');
    expect(channels.hasSubscribers).toBe(false);
    expect(channels.start.runStores({}, () => 'called')).toBe('called');
  });

  it('samples lag with a timer and does not claim to measure utilisation', () => {
    using monitor = monitorEventLoop();
    expect([monitor.lagSource, monitor.measuresUtilization]).toEqual(['timer', false]);
  });

  it('context storage runs the callback with its arguments and stores nothing', () => {
    const storage = platform.createContextStorage<string>();
    expect(storage.run('value', (a: number, b: number) => [a + b, storage.getStore()], 1, 2)).toEqual([3, undefined]);
  });

  it('runSoon falls back to a timer where there is no setImmediate, after timers already due', async () => {
    const order: string[] = [];
    setTimeout(() => order.push('due timer'), 0);
    block(3);
    vi.stubGlobal('setImmediate', undefined);
    try {
      platform.runSoon(() => order.push('soon'));
    } finally {
      vi.unstubAllGlobals();
    }
    order.push('sync');
    await Promise.resolve();
    expect(order).toEqual(['sync']);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(order).toEqual(['sync', 'due timer', 'soon']);
  });
});
