import { describe, expect, it } from 'vitest';
import {
  currentScope,
  pendingScopes,
  safeSleep,
  singleFlight,
  TimeoutError,
  withTimeout,
  type SingleFlightMessage,
} from '../src/index.js';
import { abortListenerCount, createManualClock } from '../src/testing.js';
import { recordChannels } from './fixtures/channels.js';
import { flush, observe, trackUnhandledRejections } from './fixtures/observe.js';

const reasonOf = (outcome: { status: string }): unknown => {
  expect(outcome.status).toBe('rejected');
  return (outcome as { reason?: unknown }).reason;
};

/** A run per call, resolved or rejected by hand; each records its key and signal. */
function controlled<K>() {
  const runs: { key: K; signal: AbortSignal; resolve: (v: string) => void; reject: (e: unknown) => void }[] = [];
  const fn = (key: K, signal: AbortSignal): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      runs.push({ key, signal, resolve, reject });
    });
  return { fn, runs };
}

describe('singleFlight()', () => {
  it('shares one run between concurrent calls with the same key; other keys run apart', async () => {
    const { fn, runs } = controlled<string>();
    const load = singleFlight(fn);
    const a = observe(load('a'));
    const b = observe(load('a'));
    const c = observe(load('c'));
    expect(runs.map((r) => r.key)).toEqual(['a', 'c']);
    runs[0]?.resolve('A');
    runs[1]?.resolve('C');
    await flush();
    expect([a.outcome, b.outcome, c.outcome]).toEqual([
      { status: 'fulfilled', value: 'A' },
      { status: 'fulfilled', value: 'A' },
      { status: 'fulfilled', value: 'C' },
    ]);
  });

  it('shares a failure too (the same error, ===), and caches nothing: the next call starts a new run', async () => {
    const { fn, runs } = controlled<number>();
    const load = singleFlight(fn);
    const first = [observe(load(1)), observe(load(1))];
    const error = new Error('db down');
    runs[0]?.reject(error);
    await flush();
    expect(first.map((o) => reasonOf(o.outcome))).toEqual([error, error]);
    const again = observe(load(1));
    expect(runs).toHaveLength(2);
    runs[1]?.resolve('ok');
    await flush();
    expect(again.outcome).toEqual({ status: 'fulfilled', value: 'ok' });
    const third = observe(load(1));
    expect(runs).toHaveLength(3);
    runs[2]?.resolve('fresh');
    await flush();
    expect(third.outcome).toEqual({ status: 'fulfilled', value: 'fresh' });
  });

  it('a caller who calls again while reacting to the outcome starts a new run (the entry left first)', async () => {
    const { fn, runs } = controlled<string>();
    const load = singleFlight(fn);
    let second: Promise<string> | undefined;
    const first = load('k').then((value) => {
      second = load('k');
      return value;
    });
    runs[0]?.resolve('one');
    expect(await first).toBe('one');
    expect(runs).toHaveLength(2);
    runs[1]?.resolve('two');
    expect(await second).toBe('two');
  });

  it('compares keys with SameValueZero: NaN is NaN, -0 is 0, objects by identity', () => {
    const { fn, runs } = controlled<unknown>();
    const load = singleFlight(fn);
    const key = { id: 1 };
    for (const k of [Number.NaN, Number.NaN, 0, -0, key, key, { id: 1 }]) void load(k).catch(() => undefined);
    expect(runs).toHaveLength(4);
    for (const run of runs) run.resolve('done');
  });

  it('one caller’s abort releases only that caller (its reason, ===); the run goes on for the others', async () => {
    const { fn, runs } = controlled<string>();
    const load = singleFlight(fn);
    const leaving = new AbortController();
    const staying = new AbortController();
    const a = observe(load('k', { signal: leaving.signal }));
    const b = observe(load('k', { signal: staying.signal }));
    const reason = { gone: true };
    leaving.abort(reason);
    await flush();
    expect(reasonOf(a.outcome)).toBe(reason);
    expect(b.outcome.status).toBe('pending');
    expect(runs[0]?.signal.aborted).toBe(false);
    expect(abortListenerCount(leaving.signal)).toBe(0);
    runs[0]?.resolve('value');
    await flush();
    expect(b.outcome).toEqual({ status: 'fulfilled', value: 'value' });
    expect(abortListenerCount(staying.signal)).toBe(0);
  });

  it('one caller’s ambient deadline releases it with its scope’s TimeoutError; the others stay', async () => {
    const clock = createManualClock();
    const { fn, runs } = controlled<string>();
    const load = singleFlight(fn);
    const hurried = observe(withTimeout(50, () => load('k'), { clock, name: 'hurried' }));
    const patient = observe(withTimeout(500, () => load('k'), { clock, name: 'patient' }));
    await clock.advance(50);
    expect((reasonOf(hurried.outcome) as TimeoutError).scopeName).toBe('hurried');
    expect(runs).toHaveLength(1);
    expect(runs[0]?.signal.aborted).toBe(false);
    runs[0]?.resolve('late but fine');
    await flush();
    expect(patient.outcome).toEqual({ status: 'fulfilled', value: 'late but fine' });
    expect(clock.pendingTimers).toBe(0);
  });

  it('the last caller leaving aborts the shared run; a later call starts a fresh run, not the dying one', async () => {
    const tracker = trackUnhandledRejections();
    const { fn, runs } = controlled<string>();
    const load = singleFlight(fn, { name: 'users' });
    const one = new AbortController();
    const two = new AbortController();
    const a = observe(load('k', { signal: one.signal }));
    const b = observe(load('k', { signal: two.signal }));
    one.abort('one');
    expect(runs[0]?.signal.aborted).toBe(false);
    // A call made while the run is being aborted (from its abort listener) must not join it.
    let joinedFromListener: { outcome: { status: string } } | undefined;
    runs[0]?.signal.addEventListener('abort', () => {
      joinedFromListener = observe(load('k'));
    });
    two.abort('two');
    expect(runs[0]?.signal.aborted).toBe(true);
    expect((runs[0]?.signal.reason as DOMException).name).toBe('AbortError');
    expect((runs[0]?.signal.reason as DOMException).message).toMatch(/users.*every caller has gone/);
    expect(runs).toHaveLength(2); // the listener's call started a fresh run
    expect(runs[1]?.signal.aborted).toBe(false);
    await flush();
    expect(reasonOf(a.outcome)).toBe('one');
    expect(reasonOf(b.outcome)).toBe('two');
    runs[0]?.reject(runs[0].signal.reason); // the dying run settles late: absorbed
    runs[1]?.resolve('fresh');
    await flush();
    expect(joinedFromListener?.outcome).toEqual({ status: 'fulfilled', value: 'fresh' });
    const later = observe(load('k'));
    expect(runs).toHaveLength(3);
    runs[2]?.resolve('third');
    await flush();
    expect(later.outcome).toEqual({ status: 'fulfilled', value: 'third' });
    tracker.stop();
    expect(tracker.reasons).toEqual([]);
  });

  it('a caller that can never leave (no signal, no scope) keeps the run going when the others leave', async () => {
    const { fn, runs } = controlled<string>();
    const load = singleFlight(fn);
    const controller = new AbortController();
    const bound = observe(load('k', { signal: controller.signal }));
    const unbound = observe(load('k'));
    controller.abort('gone');
    await flush();
    expect(reasonOf(bound.outcome)).toBe('gone');
    expect(runs[0]?.signal.aborted).toBe(false);
    runs[0]?.resolve('kept');
    await flush();
    expect(unbound.outcome).toEqual({ status: 'fulfilled', value: 'kept' });
  });

  it('an aborted signal or an expired scope rejects at once, and starts or joins no run', async () => {
    const clock = createManualClock();
    const { fn, runs } = controlled<string>();
    const load = singleFlight(fn);
    const reason = new Error('before');
    await expect(load('k', { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    const expired = observe(
      withTimeout(
        10,
        async () => {
          await clock.advance(20);
          return load('k');
        },
        { clock, name: 'old' },
      ),
    );
    await clock.advance(20);
    await flush();
    expect((reasonOf(expired.outcome) as TimeoutError).scopeName).toBe('old');
    expect(runs).toHaveLength(0);
  });

  it('runs detached from the callers’ scopes, in a root scope named after it; keeps no entry after settling', async () => {
    const clock = createManualClock();
    let seen: { name: string | undefined; parent: unknown } | undefined;
    const load = singleFlight(
      async (id: number) => {
        const scope = currentScope();
        seen = { name: scope?.name, parent: scope?.parent };
        await safeSleep(10, { clock });
        return id * 2;
      },
      { name: 'doubler' },
    );
    const run = observe(withTimeout(1_000, () => load(21), { clock, name: 'request' }));
    await clock.advance(10);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 42 });
    expect(seen).toEqual({ name: 'doubler', parent: undefined });
    expect(pendingScopes()).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('publishes joins and abandoned runs on loopsafe:single-flight', async () => {
    const recorder = recordChannels(['loopsafe:single-flight']);
    try {
      const { fn, runs } = controlled<string>();
      const load = singleFlight(fn, { name: 'cache' });
      const c1 = new AbortController();
      const c2 = new AbortController();
      void load('x', { signal: c1.signal }).catch(() => undefined);
      void load('x', { signal: c2.signal }).catch(() => undefined);
      c1.abort();
      c2.abort();
      await flush();
      expect(recorder.messages<SingleFlightMessage>('loopsafe:single-flight')).toEqual([
        { name: 'cache', key: 'x', event: 'join', callers: 2 },
        { name: 'cache', key: 'x', event: 'abandon', callers: 0 },
      ]);
      runs[0]?.resolve('late');
    } finally {
      recorder.stop();
    }
  });

  it('10,000 calls on one long-lived signal leave no listener, no scope and no entry', async () => {
    const parent = new AbortController();
    let runs = 0;
    const load = singleFlight((key: number) => {
      runs++;
      return Promise.resolve(key);
    });
    for (let i = 0; i < 10_000; i++) {
      const [a, b] = await Promise.all([
        load(i % 7, { signal: parent.signal }),
        load(i % 7, { signal: parent.signal }),
      ]);
      expect(a).toBe(b);
    }
    expect(runs).toBe(10_000);
    expect(abortListenerCount(parent.signal)).toBe(0);
    expect(pendingScopes()).toEqual([]);
  });

  it('validates its arguments synchronously', () => {
    expect(() => singleFlight('x' as never)).toThrow(/`fn`/);
    expect(() => singleFlight(() => 1, { name: 5 as never })).toThrow(/`name`.*5/);
    expect(() => singleFlight(() => 1, { ttl: 5 } as never)).toThrow(/Unknown option `ttl`/);
    const load = singleFlight(function lookup() {
      return 1;
    });
    expect(() => load('k', { signal: {} as never })).toThrow(/`signal`/);
    expect(() => load('k', { sigal: 1 } as never)).toThrow(/Unknown option `sigal` passed to lookup\(\)/);
  });
});
