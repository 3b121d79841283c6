import diagnosticsChannel from 'node:diagnostics_channel';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BrokenCircuitError,
  channelNames,
  CircuitBreaker,
  currentScope,
  isBrokenCircuitError,
  isTimeoutError,
  TimeoutError,
  withTimeout,
  type CircuitMessage,
  type Clock,
} from '../src/index.js';
import { abortListenerCount, createManualClock } from '../src/testing.js';
import { flush, never, observe } from './fixtures/observe.js';

const boom = (): Promise<never> => Promise.reject(new Error('boom'));
const fine = (): Promise<string> => Promise.resolve('fine');

/** Runs `fn` through the breaker and returns the outcome without ever hanging the test. */
async function outcome(breaker: CircuitBreaker, fn: () => unknown, signal?: AbortSignal): Promise<unknown> {
  return breaker.run(fn, signal === undefined ? undefined : { signal }).then(
    (value) => ({ ok: value }),
    (error: unknown) => ({ error }),
  );
}

/** Collects the messages published on `loopsafe:circuit` until `stop()`. */
function recordTransitions(): { readonly messages: CircuitMessage[]; stop(): void } {
  const messages: CircuitMessage[] = [];
  const onMessage = (message: unknown): void => {
    messages.push(message as CircuitMessage);
  };
  diagnosticsChannel.subscribe(channelNames.circuit, onMessage);
  return { messages, stop: () => diagnosticsChannel.unsubscribe(channelNames.circuit, onMessage) };
}

let recording: ReturnType<typeof recordTransitions> | undefined;
afterEach(() => {
  recording?.stop();
  recording = undefined;
});

describe('CircuitBreaker: closed → open', () => {
  it('opens after failureThreshold failures in a row; a success resets the run', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'upstream', failureThreshold: 3, clock });
    await outcome(breaker, boom);
    await outcome(breaker, boom);
    await outcome(breaker, fine);
    await outcome(breaker, boom);
    await outcome(breaker, boom);
    expect(breaker.state).toBe('closed');
    await outcome(breaker, boom);
    expect(breaker.state).toBe('open');
  });

  it('while open, rejects at once with BrokenCircuitError without calling fn', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'billing', failureThreshold: 1, openMs: 1_000, clock });
    await outcome(breaker, boom);
    await clock.advance(250);
    let calls = 0;
    const result = observe(
      breaker.run(() => {
        calls++;
        return 'ran';
      }),
    );
    await flush();
    expect(calls).toBe(0);
    expect(result.outcome.status).toBe('rejected');
    const error = (result.outcome as { reason: unknown }).reason as BrokenCircuitError;
    expect(error).toBeInstanceOf(BrokenCircuitError);
    expect(isBrokenCircuitError(error)).toBe(true);
    expect(error.name).toBe('BrokenCircuitError');
    expect(error.breakerName).toBe('billing');
    expect(error.retryAfterMs).toBe(750);
    expect(error.stack).toContain('BrokenCircuitError');
  });

  it('opens on failureRate once minimumCalls calls are in the window, not before', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'rate', failureRate: 0.5, minimumCalls: 4, windowMs: 1_000, clock });
    await outcome(breaker, boom);
    await outcome(breaker, boom);
    await outcome(breaker, boom);
    expect(breaker.state).toBe('closed'); // 3 calls < minimumCalls, though all failed
    await outcome(breaker, fine);
    expect(breaker.state).toBe('closed'); // 3 of 4, but the rate is checked when a failure is counted
    await outcome(breaker, boom);
    expect(breaker.state).toBe('open'); // 4 of 5 ≥ 50 %
  });

  it('forgets calls that left the window', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'rate', failureRate: 0.5, minimumCalls: 4, windowMs: 1_000, clock });
    await outcome(breaker, boom);
    await outcome(breaker, boom);
    await outcome(breaker, boom);
    await clock.advance(1_000); // the three failures leave the window
    await outcome(breaker, fine);
    await outcome(breaker, fine);
    await outcome(breaker, fine);
    await outcome(breaker, boom);
    expect(breaker.state).toBe('closed'); // 1 of 4
    await outcome(breaker, boom);
    expect(breaker.state).toBe('closed'); // 2 of 5
    await outcome(breaker, boom);
    expect(breaker.state).toBe('open'); // 3 of 6
  });

  it('with failureRate alone, consecutive failures do not open it by themselves', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'rate', failureRate: 1, minimumCalls: 20, clock });
    for (let i = 0; i < 19; i++) await outcome(breaker, boom);
    expect(breaker.state).toBe('closed');
    await outcome(breaker, boom);
    expect(breaker.state).toBe('open');
  });

  it('defaults to 5 consecutive failures', async () => {
    const breaker = new CircuitBreaker({ name: 'defaults', clock: createManualClock() });
    for (let i = 0; i < 4; i++) await outcome(breaker, boom);
    expect(breaker.state).toBe('closed');
    await outcome(breaker, boom);
    expect(breaker.state).toBe('open');
  });

  it('counts a synchronous throw and a synchronous value', async () => {
    const breaker = new CircuitBreaker({ name: 'sync', failureThreshold: 2, clock: createManualClock() });
    const thrown = new Error('sync');
    expect(
      await outcome(breaker, () => {
        throw thrown;
      }),
    ).toEqual({ error: thrown });
    expect(await outcome(breaker, () => 42)).toEqual({ ok: 42 }); // resets the run
    await outcome(breaker, () => {
      throw thrown;
    });
    expect(breaker.state).toBe('closed');
    await outcome(breaker, () => {
      throw thrown;
    });
    expect(breaker.state).toBe('open');
  });

  it('a call still running when the breaker opens does not count when it settles', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'late', failureThreshold: 1, openMs: 100, clock });
    let failLate!: (error: Error) => void;
    const late = observe(breaker.run(() => new Promise((_, reject) => (failLate = reject))));
    await outcome(breaker, boom);
    expect(breaker.state).toBe('open');
    await clock.advance(60);
    failLate(new Error('late'));
    await flush();
    expect(late.outcome.status).toBe('rejected');
    await clock.advance(40);
    expect(breaker.state).toBe('half-open'); // the late failure did not restart openMs
  });
});

describe('CircuitBreaker: open → half-open → closed or open', () => {
  it('turns half-open once openMs has passed, worked out from the clock with no timer', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'lazy', failureThreshold: 1, openMs: 500, clock });
    await outcome(breaker, boom);
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(499);
    expect(breaker.state).toBe('open');
    await clock.advance(1);
    expect(breaker.state).toBe('half-open');
  });

  it('admits at most halfOpenMaxCalls trials at once; the others are turned away with retryAfterMs 0', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({
      name: 'trials',
      failureThreshold: 1,
      openMs: 100,
      halfOpenMaxCalls: 2,
      clock,
    });
    await outcome(breaker, boom);
    await clock.advance(100);
    let started = 0;
    const release: (() => void)[] = [];
    const trial = (): Promise<string> =>
      new Promise((resolve) => {
        started++;
        release.push(() => {
          resolve('trial ok');
        });
      });
    const first = observe(breaker.run(trial));
    const second = observe(breaker.run(trial));
    const third = observe(breaker.run(trial));
    await flush();
    expect(started).toBe(2);
    expect(third.outcome.status).toBe('rejected');
    expect(((third.outcome as { reason: unknown }).reason as BrokenCircuitError).retryAfterMs).toBe(0);
    release[0]?.();
    await flush();
    expect(first.outcome).toEqual({ status: 'fulfilled', value: 'trial ok' });
    expect(breaker.state).toBe('closed');
    release[1]?.();
    await flush();
    expect(second.outcome.status).toBe('fulfilled');
    expect(breaker.state).toBe('closed');
  });

  it('a failed trial reopens it for a full openMs', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'reopen', failureThreshold: 1, openMs: 100, clock });
    await outcome(breaker, boom);
    await clock.advance(150);
    expect(breaker.state).toBe('half-open');
    const trial = (await outcome(breaker, boom)) as { error: Error };
    expect(trial.error.message).toBe('boom');
    expect(breaker.state).toBe('open');
    const turned = (await outcome(breaker, fine)) as { error: BrokenCircuitError };
    expect(turned.error.retryAfterMs).toBe(100);
    await clock.advance(99);
    expect(breaker.state).toBe('open');
    await clock.advance(1);
    expect(breaker.state).toBe('half-open');
  });

  it('publishes every transition on loopsafe:circuit with name, from, to, reason and time', async () => {
    recording = recordTransitions();
    const clock = createManualClock({ start: 1_000 });
    const breaker = new CircuitBreaker({ name: 'observed', failureThreshold: 2, openMs: 100, clock });
    await outcome(breaker, boom);
    await outcome(breaker, boom);
    await clock.advance(100);
    await outcome(breaker, boom);
    await clock.advance(100);
    await outcome(breaker, fine);
    await outcome(breaker, boom);
    breaker.reset(); // closed already: no transition
    await outcome(breaker, boom);
    await outcome(breaker, boom);
    breaker.reset();
    const mine = recording.messages.filter((message) => message.name === 'observed');
    expect(mine.map(({ from, to, reason }) => `${from}>${to}:${reason}`)).toEqual([
      'closed>open:consecutive-failures',
      'open>half-open:open-elapsed',
      'half-open>open:trial-failed',
      'open>half-open:open-elapsed',
      'half-open>closed:trial-succeeded',
      'closed>open:consecutive-failures',
      'open>closed:reset',
    ]);
    expect(mine.map((message) => message.at)).toEqual([1_000, 1_100, 1_100, 1_200, 1_200, 1_200, 1_200]);
  });

  it('reports failure-rate as the reason when the rate opens it', async () => {
    recording = recordTransitions();
    const breaker = new CircuitBreaker({
      name: 'by-rate',
      failureRate: 0.5,
      minimumCalls: 2,
      clock: createManualClock(),
    });
    await outcome(breaker, fine);
    await outcome(breaker, boom);
    expect(recording.messages.filter((m) => m.name === 'by-rate').map((m) => m.reason)).toEqual(['failure-rate']);
  });

  it('reset() closes it and forgets the counts', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'reset', failureThreshold: 2, clock });
    await outcome(breaker, boom);
    breaker.reset();
    await outcome(breaker, boom);
    expect(breaker.state).toBe('closed');
    await outcome(breaker, boom);
    expect(breaker.state).toBe('open');
    breaker.reset();
    expect(breaker.state).toBe('closed');
    expect(await outcome(breaker, fine)).toEqual({ ok: 'fine' });
  });

  it('openMs: Infinity stays open until reset()', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'forever', failureThreshold: 1, openMs: Infinity, clock });
    await outcome(breaker, boom);
    await clock.advance(1e12);
    expect(breaker.state).toBe('open');
    expect(((await outcome(breaker, fine)) as { error: BrokenCircuitError }).error.retryAfterMs).toBe(Infinity);
  });
});

describe('CircuitBreaker: what counts', () => {
  it('a cancellation by the caller’s signal rejects with its reason (===) and counts for nothing', async () => {
    const breaker = new CircuitBreaker({ name: 'cancel', failureThreshold: 2, clock: createManualClock() });
    const reason = { why: 'caller left' };
    await outcome(breaker, boom);
    for (let i = 0; i < 5; i++) {
      const controller = new AbortController();
      const run = observe(breaker.run(() => never(), { signal: controller.signal }));
      controller.abort(reason);
      await flush();
      expect(run.outcome).toEqual({ status: 'rejected', reason });
      expect((run.outcome as { reason: unknown }).reason).toBe(reason);
    }
    expect(breaker.state).toBe('closed'); // not failures…
    await outcome(breaker, boom);
    expect(breaker.state).toBe('open'); // …nor successes: the run of failures went on
  });

  it('an already-aborted signal rejects with its reason without calling fn', async () => {
    const breaker = new CircuitBreaker({ name: 'aborted', failureThreshold: 1 });
    const reason = new Error('gone');
    let calls = 0;
    const result = await outcome(
      breaker,
      () => {
        calls++;
      },
      AbortSignal.abort(reason),
    );
    expect(result).toEqual({ error: reason });
    expect(calls).toBe(0);
    expect(breaker.state).toBe('closed');
  });

  it('the ambient deadline passing (work ignoring its signal) counts for nothing', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'deadline', failureThreshold: 1, clock });
    const run = observe(withTimeout(100, () => breaker.run(() => never()), { clock, name: 'request' }));
    await clock.advance(100);
    expect(run.outcome.status).toBe('rejected');
    expect(((run.outcome as { reason: unknown }).reason as TimeoutError).scopeName).toBe('request');
    expect(breaker.state).toBe('closed');
  });

  it('the ambient scope cancelled counts for nothing, and the work’s signal aborts with that reason', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'scope-cancel', failureThreshold: 1, clock });
    const reason = new Error('shutdown');
    let seen: unknown;
    const run = observe(
      withTimeout(
        Infinity,
        (scope) => {
          const running = breaker.run(({ signal }) => {
            signal.addEventListener(
              'abort',
              () => {
                seen = signal.reason as unknown;
              },
              { once: true },
            );
            return never();
          });
          scope.cancel(reason);
          return running;
        },
        { clock },
      ),
    );
    await flush();
    expect(run.outcome).toEqual({ status: 'rejected', reason });
    expect(seen).toBe(reason);
    expect(breaker.state).toBe('closed');
  });

  it('a call made in a scope already past its deadline does not run and counts for nothing', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'late-call', failureThreshold: 1, clock });
    let calls = 0;
    const run = observe(
      withTimeout(
        10,
        async () => {
          await clock.advance(10); // the deadline passes while this scope's code still runs
          return breaker.run(() => calls++);
        },
        { clock },
      ),
    );
    await flush();
    await flush();
    expect(run.outcome.status).toBe('rejected');
    expect(calls).toBe(0);
    expect(breaker.state).toBe('closed');
  });

  it('a TimeoutError of the work’s own deadline counts as a failure', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'slow', failureThreshold: 1, clock });
    const run = observe(breaker.run(() => withTimeout(50, () => never(), { clock, name: 'own' })));
    await clock.advance(50);
    expect(run.outcome.status).toBe('rejected');
    expect(isTimeoutError((run.outcome as { reason: unknown }).reason)).toBe(true);
    expect(breaker.state).toBe('open');
  });

  it('shouldCount: false lets the error through, counted neither as failure nor as success', async () => {
    const notFound = new Error('404');
    const breaker = new CircuitBreaker({
      name: 'filter',
      failureThreshold: 2,
      shouldCount: (error) => error !== notFound,
      clock: createManualClock(),
    });
    await outcome(breaker, boom);
    expect(await outcome(breaker, () => Promise.reject(notFound))).toEqual({ error: notFound });
    expect(breaker.state).toBe('closed');
    await outcome(breaker, boom);
    expect(breaker.state).toBe('open');
  });

  it('a shouldCount that throws rejects the call with its error', async () => {
    const hookError = new Error('hook');
    const breaker = new CircuitBreaker({
      name: 'hook',
      shouldCount: () => {
        throw hookError;
      },
    });
    expect(await outcome(breaker, boom)).toEqual({ error: hookError });
  });

  it('a trial cancelled from outside frees its slot and leaves the breaker half-open', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'trial-cancel', failureThreshold: 1, openMs: 10, clock });
    await outcome(breaker, boom);
    await clock.advance(10);
    const controller = new AbortController();
    const trial = observe(breaker.run(() => never(), { signal: controller.signal }));
    await flush();
    expect(((await outcome(breaker, fine)) as { error: unknown }).error).toBeInstanceOf(BrokenCircuitError);
    controller.abort(new Error('caller gone'));
    await flush();
    expect(trial.outcome.status).toBe('rejected');
    expect(breaker.state).toBe('half-open');
    expect(await outcome(breaker, fine)).toEqual({ ok: 'fine' });
    expect(breaker.state).toBe('closed');
  });
});

describe('CircuitBreaker: the work', () => {
  it('runs in a child scope of the ambient one, named after the breaker, and receives its signal', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'inner', clock });
    const seen = await withTimeout(
      1_000,
      () =>
        breaker.run(({ signal }) => ({
          name: currentScope()?.name,
          parent: currentScope()?.parent?.name,
          remaining: currentScope()?.remaining(),
          signalIsScopes: signal === currentScope()?.signal,
        })),
      { clock, name: 'request' },
    );
    expect(seen).toEqual({ name: 'inner', parent: 'request', remaining: 1_000, signalIsScopes: true });
  });

  it('with no scope and no signal, is called directly and made no AbortController unless it reads signal', async () => {
    const breaker = new CircuitBreaker({ name: 'bare' });
    const Original = globalThis.AbortController;
    let made = 0;
    globalThis.AbortController = class extends Original {
      constructor() {
        super();
        made++;
      }
    };
    try {
      expect(await breaker.run(() => currentScope())).toBeUndefined();
      expect(made).toBe(0);
      const aborted = await breaker.run(({ signal }) => signal.aborted);
      expect(aborted).toBe(false);
      expect(made).toBe(1);
    } finally {
      globalThis.AbortController = Original;
    }
  });

  it('is bounded by the caller’s signal even when the work ignores it', async () => {
    const breaker = new CircuitBreaker({ name: 'ignore' });
    const controller = new AbortController();
    const run = observe(breaker.run(() => never(), { signal: controller.signal }));
    await flush();
    expect(run.outcome.status).toBe('pending');
    controller.abort('stop');
    await flush();
    expect(run.outcome).toEqual({ status: 'rejected', reason: 'stop' });
  });

  it('leaves no listener on a long-lived signal and no timer after 1,000 calls', async () => {
    const clock = createManualClock();
    const breaker = new CircuitBreaker({ name: 'hygiene', failureThreshold: 3, openMs: 5, clock });
    const parent = new AbortController();
    for (let i = 0; i < 1_000; i++) {
      await breaker
        .run(({ signal }) => (i % 3 === 0 ? Promise.reject(new Error(signal.aborted ? 'x' : 'y')) : i), {
          signal: parent.signal,
        })
        .catch(() => undefined);
      if (i % 100 === 0) await clock.advance(5);
    }
    expect(abortListenerCount(parent.signal)).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('CircuitBreaker: the failure-rate window matches a naive model', () => {
  /** A clock the property moves by hand, synchronously. */
  function steppedClock(): Clock & { t: number } {
    const clock = {
      t: 0,
      now: () => clock.t,
      setTimeout: () => {
        throw new Error('the breaker must arm no timer');
      },
      clearTimeout: () => undefined,
    };
    return clock;
  }

  it('opens exactly when the share of failures among the window’s calls reaches failureRate', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 10, max: 5_000 }),
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 12 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2_000 }), fc.boolean()), { minLength: 1, maxLength: 200 }),
        (windowMs, failureRate, minimumCalls, steps) => {
          const clock = steppedClock();
          const breaker = new CircuitBreaker({ name: 'model', failureRate, minimumCalls, windowMs, clock });
          const bucketMs = windowMs / 10;
          let calls: { at: number; failed: boolean }[] = [];
          for (const [dt, failed] of steps) {
            clock.t += dt;
            void breaker
              .run(() => {
                if (failed) throw new Error('f');
                return 1;
              })
              .catch(() => undefined);
            // The model: every call whose bucket is among the last 10, counted from scratch.
            calls.push({ at: clock.t, failed });
            const newest = Math.floor(clock.t / bucketMs);
            const inWindow = calls.filter((call) => Math.floor(call.at / bucketMs) > newest - 10);
            const failures = inWindow.filter((call) => call.failed).length;
            const opens = failed && inWindow.length >= minimumCalls && failures / inWindow.length >= failureRate;
            expect(breaker.state).toBe(opens ? 'open' : 'closed');
            if (opens) {
              breaker.reset();
              calls = [];
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
