import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';
import { TimeoutError } from '../src/errors.js';
import { currentScope, pendingScopes, withTimeout } from '../src/scope.js';
import { Semaphore } from '../src/semaphore.js';
import { safeSleep } from '../src/sleep.js';
import type { StallMessage } from '../src/channels.js';
import { watchStalls } from '../src/stalls.js';
import { createManualClock } from '../src/testing.js';
import { safeAsync, withSafeAsync } from '../src/with-safe-async.js';
import type { defineClient } from './fixtures/decorated.js';
import { flush, never, observe } from './fixtures/observe.js';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('withSafeAsync()', () => {
  it('keeps this, arguments, name and length, and returns a promise even for a sync function', async () => {
    const counter = {
      base: 10,
      add: withSafeAsync(function add(this: { base: number }, a: number, b: number) {
        return this.base + a + b;
      }),
    };
    const result = counter.add(1, 2);
    expect(result).toBeInstanceOf(Promise);
    expect(await result).toBe(13);
    expect(counter.add.name).toBe('add');
    expect(counter.add.length).toBe(2);
  });

  it('is typed precisely: parameters, this and the awaited return type are preserved', () => {
    const sync = withSafeAsync((a: string, b?: number) => a.length + (b ?? 0));
    expectTypeOf(sync).parameters.toEqualTypeOf<[a: string, b?: number]>();
    expectTypeOf(sync).returns.toEqualTypeOf<Promise<number>>();
    const asyncFn = withSafeAsync(async (id: number) => Promise.resolve({ id }));
    expectTypeOf(asyncFn).returns.toEqualTypeOf<Promise<{ id: number }>>();
    const method = withSafeAsync(function (this: { x: number }) {
      return this.x;
    });
    expectTypeOf(method).thisParameter.toEqualTypeOf<{ x: number }>();
  });

  it('turns a sync throw into a rejection with the same error', async () => {
    const boom = new Error('boom');
    const wrapped = withSafeAsync(() => {
      throw boom;
    });
    const outcome = observe(wrapped());
    await flush();
    expect(outcome.outcome).toEqual({ status: 'rejected', reason: boom });
  });

  it('runs each call in its own named child scope of the ambient scope', async () => {
    const clock = createManualClock();
    const seen: {
      name: string | undefined;
      parent: string | undefined;
      deadline: number | undefined;
      open: string[];
    }[] = [];
    const wrapped = withSafeAsync(
      async () => {
        const scope = currentScope();
        seen.push({
          name: scope?.name,
          parent: scope?.parent?.name,
          deadline: scope?.deadline,
          open: pendingScopes().map((s) => s.name),
        });
        return Promise.resolve('ok');
      },
      { name: 'loadUser', timeout: 500, clock },
    );
    await withTimeout(200, () => wrapped(), { name: 'request', clock });
    await wrapped();
    expect(seen).toEqual([
      { name: 'loadUser', parent: 'request', deadline: 200, open: ['request', 'loadUser'] }, // min(own 500, enclosing 200)
      { name: 'loadUser', parent: undefined, deadline: 500, open: ['loadUser'] },
    ]);
  });

  it('rejects with its TimeoutError at the deadline, without waiting for a function that ignores its signal', async () => {
    const clock = createManualClock();
    const wrapped = withSafeAsync((_id: number) => never(), { name: 'fetchProfile', timeout: 100, clock });
    const call = observe(wrapped(7));
    await clock.advance(99);
    expect(call.outcome.status).toBe('pending');
    await clock.advance(1);
    expect(call.outcome.status).toBe('rejected');
    const reason = (call.outcome as { reason: unknown }).reason;
    expect(reason).toBeInstanceOf(TimeoutError);
    expect(reason).toMatchObject({ scopeName: 'fetchProfile', timeoutMs: 100 });
    expect(clock.pendingTimers).toBe(0);
  });

  it("rejects with the policy signal's reason (===) and never calls fn when it is already aborted", async () => {
    const controller = new AbortController();
    let calls = 0;
    const wrapped = withSafeAsync(
      () => {
        calls++;
        return never();
      },
      { signal: controller.signal },
    );
    const running = observe(wrapped());
    const reason = new Error('shutting down');
    controller.abort(reason);
    await flush();
    expect(running.outcome).toEqual({ status: 'rejected', reason });
    await expect(wrapped()).rejects.toBe(reason);
    expect(calls).toBe(1);
  });

  describe('retry', () => {
    it("retries failures inside the call scope, with the call's name", async () => {
      const clock = createManualClock();
      const names: (string | undefined)[] = [];
      let attempts = 0;
      const wrapped = withSafeAsync(
        async (x: number) => {
          attempts++;
          names.push(currentScope()?.name);
          if (attempts < 3) throw new Error(`fail ${String(attempts)}`);
          return Promise.resolve(x * 2);
        },
        {
          name: 'double',
          timeout: 1_000,
          retry: { maxAttempts: 5, backoff: { initialMs: 10, jitter: 'none' } },
          clock,
        },
      );
      const call = observe(wrapped(21));
      await clock.advance(10); // first wait
      await clock.advance(20); // second wait
      expect(call.outcome).toEqual({ status: 'fulfilled', value: 42 });
      expect(attempts).toBe(3);
      expect(names).toEqual(['double', 'double', 'double']);
    });

    it("when the call's timeout cuts the retries short, rejects with a TimeoutError whose cause is the last failure", async () => {
      const clock = createManualClock();
      let attempts = 0;
      const wrapped = withSafeAsync(
        async () => {
          attempts++;
          if (attempts === 1) throw new Error('first failure');
          return never();
        },
        { name: 'flaky', timeout: 100, retry: { maxAttempts: 5, backoff: { initialMs: 10, jitter: 'none' } }, clock },
      );
      const call = observe(wrapped());
      await clock.advance(100);
      expect(call.outcome.status).toBe('rejected');
      const reason = (call.outcome as { reason: TimeoutError }).reason;
      expect(reason).toBeInstanceOf(TimeoutError);
      expect(reason.scopeName).toBe('flaky');
      expect((reason.cause as Error).message).toBe('first failure');
      expect(clock.pendingTimers).toBe(0);
    });

    it('retry: false makes a single attempt', async () => {
      let attempts = 0;
      const wrapped = withSafeAsync(
        () => {
          attempts++;
          throw new Error('no');
        },
        { retry: false },
      );
      await expect(wrapped()).rejects.toThrow('no');
      expect(attempts).toBe(1);
    });

    it('does not touch a shared RetryBudget when the function is wrapped', async () => {
      const { RetryBudget } = await import('../src/retry-budget.js');
      const budget = new RetryBudget({ maxTokens: 10, tokenRatio: 0.1 });
      const before = budget.snapshot();
      withSafeAsync(() => 1, { retry: { budget } });
      expect(budget.snapshot()).toEqual(before);
    });
  });

  describe('concurrency', () => {
    it('runs at most `concurrency` calls at once, FIFO, and releases every permit', async () => {
      const clock = createManualClock();
      const shared = new Semaphore(2);
      let active = 0;
      let peak = 0;
      const order: number[] = [];
      const wrapped = withSafeAsync(
        async (n: number) => {
          active++;
          peak = Math.max(peak, active);
          order.push(n);
          await safeSleep(10);
          active--;
          return n;
        },
        { concurrency: shared, clock },
      );
      const calls = [1, 2, 3, 4, 5].map((n) => observe(wrapped(n)));
      await clock.flush(); // let the first calls reach their sleeps
      await clock.runAll();
      expect(calls.map((c) => c.outcome)).toEqual([1, 2, 3, 4, 5].map((value) => ({ status: 'fulfilled', value })));
      expect(peak).toBe(2);
      expect(order).toEqual([1, 2, 3, 4, 5]);
      expect(shared.available).toBe(2);
      expect(shared.waiting).toBe(0);
    });

    it('counts the wait for a permit against the deadline, and a timed-out waiter leaves the queue', async () => {
      const clock = createManualClock();
      const shared = new Semaphore(1);
      let started = 0;
      const wrapped = withSafeAsync(
        async () => {
          started++;
          await safeSleep(500);
        },
        { name: 'slot', timeout: 1_000, concurrency: shared, clock },
      );
      const first = observe(wrapped());
      await clock.advance(300);
      const second = observe(wrapped()); // waits 200 ms, then runs 500 ms: its deadline is at 1300
      const third = observe(wrapped()); // would start at 1000: its deadline (1300) passes first
      expect(shared.waiting).toBe(2);
      await clock.advance(200);
      expect(first.outcome.status).toBe('fulfilled');
      expect(started).toBe(2);
      await clock.advance(500);
      expect(second.outcome.status).toBe('fulfilled');
      expect(started).toBe(3);
      await clock.advance(300); // t = 1300: the third's deadline, 300 ms into its run
      expect(third.outcome.status).toBe('rejected');
      expect((third.outcome as { reason: TimeoutError }).reason).toMatchObject({
        name: 'TimeoutError',
        scopeName: 'slot',
      });
      expect(shared.available).toBe(1);
      expect(clock.pendingTimers).toBe(0);
    });

    it('a call that times out while queued never runs', async () => {
      const clock = createManualClock();
      const shared = new Semaphore(1);
      let started = 0;
      const wrapped = withSafeAsync(
        async () => {
          started++;
          await safeSleep(1_000);
        },
        { timeout: 2_000, concurrency: shared, clock },
      );
      const holder = observe(wrapped());
      const queued = observe(withTimeout(100, () => wrapped(), { clock }));
      await clock.advance(100);
      expect(queued.outcome.status).toBe('rejected');
      expect(shared.waiting).toBe(0);
      await clock.advance(900);
      expect(holder.outcome.status).toBe('fulfilled');
      expect(started).toBe(1);
      expect(shared.available).toBe(1);
    });

    it('a call that ignores its signal is released on time but keeps its permit until its work settles', async () => {
      const clock = createManualClock();
      const limit = new Semaphore(1);
      let finishZombie: (value: string) => void = () => undefined;
      const zombieWork = new Promise<string>((resolve) => {
        finishZombie = resolve;
      });
      const stalls: StallMessage[] = [];
      using watchdog = watchStalls({ clock, graceMs: 50, intervalMs: 10, onStall: (stall) => stalls.push(stall) });
      const stuck = withSafeAsync(() => zombieWork, { name: 'stuck', timeout: 100, concurrency: limit, clock });
      const next = withSafeAsync(() => 'next', { name: 'next', timeout: 100, concurrency: limit, clock });
      const first = observe(stuck());
      await clock.advance(100);
      // The caller has its TimeoutError on time …
      expect(first.outcome.status).toBe('rejected');
      expect(((first.outcome as { reason: unknown }).reason as TimeoutError).scopeName).toBe('stuck');
      // … but the work still runs, so the limit still counts it.
      expect(limit.available).toBe(0);
      const waiting = observe(next());
      await clock.advance(60);
      expect(stalls.map((stall) => [stall.kind, stall.name])).toEqual([['overdue', 'stuck']]);
      expect(waiting.outcome.status).toBe('pending');
      expect(limit.waiting).toBe(1);
      finishZombie('late');
      await clock.flush();
      // Released exactly once, when the work settled: the waiter has it, and then it is free.
      expect(waiting.outcome).toEqual({ status: 'fulfilled', value: 'next' });
      expect(limit.available).toBe(1);
      expect(watchdog.running).toBe(true);
    });

    it('a waiter whose deadline passes while the zombie holds the permit gives up on time', async () => {
      const clock = createManualClock();
      const limit = new Semaphore(1);
      const stuck = withSafeAsync(() => never(), { name: 'stuck', timeout: 100, concurrency: limit, clock });
      const next = withSafeAsync(() => 'next', { name: 'next', timeout: 30, concurrency: limit, clock });
      const first = observe(stuck());
      const second = observe(next());
      await clock.advance(30);
      expect(((second.outcome as { reason: unknown }).reason as TimeoutError).scopeName).toBe('next');
      expect(limit.waiting).toBe(0);
      await clock.advance(70);
      expect(first.outcome.status).toBe('rejected');
      expect(limit.available).toBe(0);
    });

    it('a numeric concurrency makes one semaphore per wrapped function', async () => {
      const clock = createManualClock();
      let active = 0;
      let peak = 0;
      const work = async (): Promise<void> => {
        active++;
        peak = Math.max(peak, active);
        await safeSleep(10);
        active--;
      };
      const a = withSafeAsync(work, { concurrency: 1, clock });
      const b = withSafeAsync(work, { concurrency: 1, clock });
      const calls = [a(), a(), b(), b()].map((p) => observe(p));
      await clock.advance(10);
      expect(peak).toBe(2); // one of a, one of b
      await clock.advance(10);
      expect(calls.every((c) => c.outcome.status === 'fulfilled')).toBe(true);
    });
  });

  describe('bad input fails when wrapping', () => {
    it.each([
      ['fn', () => withSafeAsync(42 as unknown as () => void), TypeError, /`fn`.*42/],
      [
        'unknown policy key',
        () => withSafeAsync(() => 1, { timeot: 5 } as never),
        TypeError,
        /Unknown option `timeot`/,
      ],
      ['negative timeout', () => withSafeAsync(() => 1, { timeout: -1 }), RangeError, /`timeout`.*-1/],
      ['NaN timeout', () => withSafeAsync(() => 1, { timeout: Number.NaN }), RangeError, /`timeout`.*NaN/],
      ['concurrency 0', () => withSafeAsync(() => 1, { concurrency: 0 }), RangeError, /`concurrency`.*0/],
      ['concurrency 1.5', () => withSafeAsync(() => 1, { concurrency: 1.5 }), RangeError, /`concurrency`.*1.5/],
      [
        'concurrency string',
        () => withSafeAsync(() => 1, { concurrency: '2' as never }),
        TypeError,
        /`concurrency`.*"2"/,
      ],
      ['retry: true', () => withSafeAsync(() => 1, { retry: true as never }), TypeError, /`retry`.*true/],
      [
        'unknown retry option',
        () => withSafeAsync(() => 1, { retry: { attempts: 3 } as never }),
        TypeError,
        /Unknown option `attempts`/,
      ],
      [
        'bad retry maxAttempts',
        () => withSafeAsync(() => 1, { retry: { maxAttempts: 0 } }),
        RangeError,
        /`maxAttempts`.*0/,
      ],
      ['name', () => withSafeAsync(() => 1, { name: 3 as never }), TypeError, /`name`.*3/],
      ['signal', () => withSafeAsync(() => 1, { signal: {} as never }), TypeError, /`signal`/],
      ['clock', () => withSafeAsync(() => 1, { clock: {} as never }), TypeError, /`clock`/],
      ['decorator policy', () => safeAsync({ concurrency: -1 }), RangeError, /`concurrency`.*-1/],
    ])('%s', (_name, act, type, message) => {
      expect(act).toThrow(type);
      expect(act).toThrow(message);
    });
  });
});

describe('@safeAsync (standard decorator)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loopsafe-decorated-'));
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** Transpiles the fixture with TypeScript's standard-decorator emit (no experimentalDecorators) and imports it. */
  async function load(): Promise<typeof defineClient> {
    const source = readFileSync(join(root, 'test', 'fixtures', 'decorated.ts'), 'utf8');
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, experimentalDecorators: false },
    });
    expect(outputText).toContain('__esDecorate'); // TC39 decorators, not the legacy __decorate
    const code = outputText.replace(
      /from '\.\.\/\.\.\/src\/([\w/-]+)\.js'/g,
      (_match, path: string) => `from '${pathToFileURL(join(root, 'src', `${path}.ts`)).href}'`,
    );
    const file = join(dir, 'decorated.mjs');
    writeFileSync(file, code);
    const module = (await import(pathToFileURL(file).href)) as { defineClient: typeof defineClient };
    return module.defineClient;
  }

  it('wraps the method: this, arguments, a scope named after the method', async () => {
    const clock = createManualClock();
    const Client = (await load())(clock);
    const client = new Client('a');
    const call = observe(client.call('x', 10));
    await clock.advance(10);
    expect(call.outcome).toEqual({ status: 'fulfilled', value: 'a:x:call' });
    expect(Client.prototype.call.name).toBe('call');
  });

  it('limits concurrency per instance: one instance serialises, two instances do not throttle each other', async () => {
    const clock = createManualClock();
    const Client = (await load())(clock);
    const a = new Client('a');
    const b = new Client('b');
    const calls = [a.call('1', 10), a.call('2', 10), b.call('1', 10)].map((p) => observe(p));
    await clock.advance(10);
    expect(calls.map((c) => c.outcome.status)).toEqual(['fulfilled', 'pending', 'fulfilled']);
    expect(b.peak).toBe(1);
    await clock.advance(10);
    expect(calls[1]?.outcome).toEqual({ status: 'fulfilled', value: 'a:2:call' });
    expect(a.peak).toBe(1);
  });

  it('applies the timeout, naming the scope, to a method that ignores its signal', async () => {
    const clock = createManualClock();
    const Client = (await load())(clock);
    const call = observe(new Client('z').hang());
    await clock.advance(100);
    expect(call.outcome.status).toBe('rejected');
    expect((call.outcome as { reason: TimeoutError }).reason).toMatchObject({
      name: 'TimeoutError',
      scopeName: 'Client.hang',
      timeoutMs: 100,
    });
  });

  it('decorates static methods', async () => {
    const clock = createManualClock();
    const Client = (await load())(clock);
    const made = await Client.make('s');
    expect(made.id).toBe('s');
    expect(Client.made).toBe(1);
  });

  it('rejects anything but a method', () => {
    const decorate = safeAsync({ timeout: 10 }) as unknown as (
      value: unknown,
      context: { kind: string; name: string },
    ) => unknown;
    expect(() => decorate(() => undefined, { kind: 'field', name: 'x' })).toThrow(/decorate a method, got a field/);
  });
});

describe('globals', () => {
  it('no global is touched: before import, after import and after use are identical', async () => {
    const script = fileURLToPath(new URL('./fixtures/globals-untouched.mts', import.meta.url));
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--import', 'tsx', script], { timeout: 20_000 }, (error, out) => {
        if (error) reject(error);
        else resolve(out);
      });
    });
    expect(JSON.parse(stdout.trim())).toEqual({ afterImport: [], afterUse: [] });
  }, 25_000);
});
