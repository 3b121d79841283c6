/**
 * The engine's contract as DESIGN.md states it, beyond one primitive: process
 * lifetime, clocks nested in clocks, signals read after their scope was left,
 * waits on user work that never settles, timer chunks, the manual clock's
 * memory, and how loopsafe's errors print.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  cooperativeForEach,
  currentScope,
  currentSignal,
  CircuitBreaker,
  GatherError,
  hedge,
  isAbortError,
  isBrokenCircuitError,
  isRateLimitError,
  isTimeoutError,
  RateLimiter,
  isQueueFullError,
  QueueFullError,
  safeRace,
  Semaphore,
  safeSleep,
  safeWaitFor,
  TimeoutError,
  withTimeout,
  type Scope,
} from '../src/index.js';
import { createManualClock } from '../src/testing.js';
import { flush, never, observe, realDelay } from './fixtures/observe.js';

const reasonOf = (outcome: { status: string }): unknown => (outcome as { reason?: unknown }).reason;

describe('process lifetime', () => {
  it('an unref’d sleep left running inside any scope lets the process exit as soon as the scope settles', async () => {
    const script = fileURLToPath(new URL('./fixtures/unref-exit.mts', import.meta.url));
    const { stdout, exitedAt } = await new Promise<{ stdout: string; exitedAt: number }>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      const killer = setTimeout(() => child.kill(), 20_000);
      child.on('error', reject);
      child.on('exit', () => {
        clearTimeout(killer);
        resolve({ stdout: out, exitedAt: Date.now() });
      });
    });
    const match = /settled (\d+) at (\d+)/.exec(stdout);
    expect(match?.[1]).toBe('10');
    // A timer kept alive by the unref'd sleeps would hold the process about 4 s after this.
    expect(exitedAt - Number(match?.[2])).toBeLessThan(2_000);
  }, 25_000);
});

describe('a scope on one clock inside a scope on another', () => {
  it('honours the outer deadline in check(), expired, remaining() and deadline', async () => {
    const manual = createManualClock();
    let inner: Scope | undefined;
    const outer = observe(
      withTimeout(20, () =>
        withTimeout(
          1_000,
          async (scope) => {
            inner = scope;
            await never();
          },
          { clock: manual },
        ),
      ),
    );
    await flush();
    const scope = inner as Scope;
    expect(scope.remaining()).toBeLessThanOrEqual(20);
    expect(scope.remaining()).toBeGreaterThan(0);
    expect(scope.deadline).toBeLessThanOrEqual(manual.now() + 20);
    expect(scope.expired).toBe(false);
    const start = performance.now();
    while (performance.now() - start < 25) {
      // a CPU-bound stretch: no timer can fire, but the clocks move
    }
    expect(scope.expired).toBe(true);
    expect(scope.remaining()).toBe(0);
    let thrown: unknown;
    try {
      scope.check();
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(TimeoutError);
    await flush();
    // check() expired the outer scope itself: its error names it, and everything inside has it.
    expect(reasonOf(outer.outcome)).toBe(thrown);
    expect(scope.signal.reason).toBe(thrown);
  });

  it('the outer expiry reaches a wait on the other clock through the tree', async () => {
    const manual = createManualClock();
    const run = observe(withTimeout(10, () => safeSleep(60_000, { clock: manual }), { name: 'outer' }));
    await realDelay(30);
    expect((reasonOf(run.outcome) as TimeoutError).scopeName).toBe('outer');
    expect(manual.pendingTimers).toBe(0);
  });
});

describe('currentSignal() read after its scope was left', () => {
  it('links the scope again, so work given that signal in a late callback is still bounded by the deadline', async () => {
    const clock = createManualClock();
    let late: (() => AbortSignal | undefined) | undefined;
    await withTimeout(
      100,
      () => {
        // A callback made inside the scope, run after the scope's function returned.
        late = AsyncLocalStorage.bind(() => currentSignal());
      },
      { clock, name: 'request' },
    );
    expect(clock.pendingTimers).toBe(0); // left: nothing armed
    const signal = late?.();
    expect(signal?.aborted).toBe(false);
    expect(clock.pendingTimers).toBe(1); // armed again for whoever holds the signal
    await clock.advance(100);
    expect(signal?.aborted).toBe(true);
    expect((signal?.reason as TimeoutError).scopeName).toBe('request');
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('waits on user work that never settles', () => {
  it('cooperativeForEach rejects promptly on abort while an item’s promise hangs', async () => {
    const controller = new AbortController();
    const run = observe(cooperativeForEach([1, 2], () => never(), { signal: controller.signal }));
    await flush();
    controller.abort('stop');
    await flush();
    expect(run.outcome).toEqual({ status: 'rejected', reason: 'stop' });
  });

  it('cooperativeForEach stops at the deadline while an async iterable’s next() hangs', async () => {
    const clock = createManualClock();
    const hanging: AsyncIterable<number> = {
      [Symbol.asyncIterator]: () => ({ next: () => never<IteratorResult<number>>() }),
    };
    const run = observe(withTimeout(50, () => cooperativeForEach(hanging, () => undefined), { clock }));
    await clock.advance(50);
    expect(reasonOf(run.outcome)).toBeInstanceOf(TimeoutError);
  });

  it('a safeWaitFor fallback that hangs is still bounded by the enclosing deadline', async () => {
    const clock = createManualClock();
    const run = observe(
      withTimeout(100, () => safeWaitFor(never(), { timeout: 10, fallback: () => never<string>(), clock }), {
        clock,
        name: 'request',
      }),
    );
    await clock.advance(10);
    expect(run.outcome.status).toBe('pending');
    await clock.advance(90);
    expect((reasonOf(run.outcome) as TimeoutError).scopeName).toBe('request');
  });

  it('a safeWaitFor fallback runs in the caller’s scope', async () => {
    const clock = createManualClock();
    let seen: Scope | undefined;
    const run = observe(
      withTimeout(
        100,
        () =>
          safeWaitFor(never(), {
            timeout: 10,
            fallback: () => {
              seen = currentScope();
              return 'cached';
            },
            clock,
          }),
        { clock, name: 'request' },
      ),
    );
    await clock.advance(10);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'cached' });
    expect(seen?.name).toBe('request');
  });
});

describe('timers', () => {
  it('safeSleep(2 ** 31) on the manual clock resolves at exactly 2^31 ms', async () => {
    const clock = createManualClock();
    const sleeping = observe(safeSleep(2 ** 31, { clock }));
    await clock.advance(2 ** 31 - 1);
    expect(sleeping.outcome.status).toBe('pending');
    await clock.advance(1);
    expect(sleeping.outcome.status).toBe('fulfilled');
    expect(clock.now()).toBe(2 ** 31);
  });

  it('the manual clock drops a cleared timer at once: 100,000 waits with a 60 s timeout leave nothing behind', async () => {
    const clock = createManualClock();
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(gc).toBeTypeOf('function');
    gc?.();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 100_000; i++) await safeWaitFor(Promise.resolve(i), { timeout: 60_000, clock });
    gc?.();
    gc?.();
    // Measured before anything reads the clock's queue (a lazy queue would drop its dead entries then).
    const retained = process.memoryUsage().heapUsed - before;
    expect(clock.pendingTimers).toBe(0);
    expect(clock.nextTimerAt()).toBeUndefined();
    expect(retained).toBeLessThan(2 * 1024 * 1024); // a queue keeping cleared timers holds tens of MB
  }, 20_000);
});

describe('how loopsafe’s errors print', () => {
  it('a TimeoutError prints as TimeoutError, with no internal field', async () => {
    const error = await withTimeout(1, () => never()).then(
      () => undefined,
      (e: unknown) => e,
    );
    const printed = inspect(error);
    expect(printed.startsWith('TimeoutError: ')).toBe(true);
    expect(printed).not.toMatch(/Symbol\(|_TimeoutError|\[Symbol/);
    expect(Object.getOwnPropertySymbols(error)).toEqual([]);
    expect(Object.keys(error as object).sort()).toEqual(['name', 'scopeName', 'timeoutMs']);
  });

  it('a BrokenCircuitError and a RateLimitError print as what they are, with their fields only', async () => {
    const breaker = new CircuitBreaker({ name: 'billing', failureThreshold: 1, clock: createManualClock() });
    await breaker.run(() => Promise.reject(new Error('down'))).catch(() => undefined);
    const broken = await breaker
      .run(() => 'x')
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(inspect(broken).startsWith('BrokenCircuitError: Circuit "billing" is open')).toBe(true);
    expect(Object.keys(broken as object).sort()).toEqual([
      'breakerName',
      'isBrokenCircuitError',
      'name',
      'retryAfterMs',
    ]);
    expect(String((broken as Error).stack)).toMatch(/contract\.test/); // taken where the caller awaited
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1, clock: createManualClock() });
    limiter.tryAcquire();
    const limited = await limiter.acquire({ timeout: 0 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(inspect(limited).startsWith('RateLimitError: Rate limit "RateLimiter" exceeded')).toBe(true);
    expect(Object.keys(limited as object).sort()).toEqual(['limiterName', 'name', 'retryAfterMs']);
    expect(isBrokenCircuitError(broken) && isRateLimitError(limited)).toBe(true);
  });

  it('a scope prints as what it is', async () => {
    await withTimeout(
      1_000,
      (scope) => {
        expect(inspect(scope)).toMatch(
          /^Scope \{\s+name: 'checkout',\s+remainingMs: \d+(\.\d+)?,\s+state: 'open'\s+\}$/,
        );
        expect(inspect(scope)).not.toMatch(/#|_|Symbol/);
        expect((scope as { toString(): string }).toString()).toBe('Scope(checkout)');
      },
      { name: 'checkout' },
    );
  });

  it('a QueueFullError prints as QueueFullError, with no internal field, its stack at the caller', async () => {
    const semaphore = new Semaphore(1, { name: 'db', maxQueue: 0 });
    semaphore.tryAcquire();
    const error = await (async function caller() {
      return await semaphore.acquire();
    })().catch((e: unknown) => e);
    const printed = inspect(error);
    expect(printed.startsWith('QueueFullError: ')).toBe(true);
    expect(printed).not.toMatch(/Symbol\(|_QueueFullError|\[Symbol/);
    expect(printed).toMatch(/at async caller|at caller/);
    expect(Object.keys(error as object).sort()).toEqual(['maxQueue', 'name', 'semaphoreName']);
  });

  it('the GatherError of a race or a hedge that all failed prints as GatherError, its stack at the caller', async () => {
    const raced = await (async function racer() {
      return await safeRace([() => Promise.reject(new Error('a')), () => Promise.reject(new Error('b'))]);
    })().catch((e: unknown) => e);
    expect(inspect(raced).startsWith('GatherError: ')).toBe(true);
    expect((raced as Error).stack).toMatch(/at (async )?racer \(/);
    const hedged = await (async function hedger() {
      return await hedge(() => Promise.reject(new Error('x')), { delayMs: 1, maxAttempts: 2 });
    })().catch((e: unknown) => e);
    expect((hedged as Error).stack).toMatch(/at (async )?hedger \(/);
  });

  it('the guards are type predicates', () => {
    expectTypeOf(isQueueFullError).guards.toEqualTypeOf<QueueFullError>();
    expectTypeOf(isTimeoutError).guards.toEqualTypeOf<Error>();
    expectTypeOf(isAbortError).guards.toEqualTypeOf<Error>();
    expectTypeOf(isBrokenCircuitError).guards.toEqualTypeOf<Error>();
    expectTypeOf(isRateLimitError).guards.toEqualTypeOf<Error>();
    const caught: unknown = new GatherError([new Error('x')]);
    if (isTimeoutError(caught)) expectTypeOf(caught.message).toBeString();
  });
});
