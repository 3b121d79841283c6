import { describe, expect, it } from 'vitest';
import pTimeout, { TimeoutError as PTimeoutError } from 'p-timeout';
import { GatherError, isAbortError, isTimeoutError, TimeoutError } from '../src/errors.js';
import { withTimeout } from '../src/scope.js';
import { never } from './fixtures/observe.js';

describe('TimeoutError', () => {
  it('has a literal name, the scope name and the timeout', () => {
    const error = new TimeoutError(undefined, { scopeName: 'db', timeoutMs: 250 });
    expect(error.name).toBe('TimeoutError');
    expect(error.scopeName).toBe('db');
    expect(error.timeoutMs).toBe(250);
    expect(error.message).toBe('Scope "db" timed out after 250 ms');
    expect(error).toBeInstanceOf(Error);
  });

  it('carries a cause when given one', () => {
    const cause = new Error('last attempt');
    expect(new TimeoutError('gave up', { cause }).cause).toBe(cause);
    expect('cause' in new TimeoutError('no cause')).toBe(false);
  });

  it('takes its stack where the caller awaits, not in a timer callback', async () => {
    async function loadProfileForTest(): Promise<unknown> {
      return await withTimeout(5, () => never(), { name: 'profile' });
    }
    const error = (await loadProfileForTest().catch((e: unknown) => e)) as TimeoutError;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error.stack).toContain('loadProfileForTest');
    expect(error.stack).not.toContain('listOnTimeout');
  });
});

describe('isTimeoutError()', () => {
  it('recognises loopsafe, DOMException and p-timeout timeouts', async () => {
    expect(isTimeoutError(new TimeoutError())).toBe(true);
    expect(isTimeoutError(new DOMException('t', 'TimeoutError'))).toBe(true);
    expect(isTimeoutError(new PTimeoutError())).toBe(true);
    const fromPeer = await pTimeout(never(), { milliseconds: 1 }).catch((e: unknown) => e);
    expect(isTimeoutError(fromPeer)).toBe(true);
    const signal = AbortSignal.timeout(1);
    await new Promise((resolve) => {
      signal.addEventListener('abort', resolve);
    });
    expect(isTimeoutError(signal.reason)).toBe(true);
  });

  it('follows .cause chains, safely', () => {
    const wrapped = new Error('outer', { cause: new Error('middle', { cause: new TimeoutError() }) });
    expect(isTimeoutError(wrapped)).toBe(true);
    const cyclic = new Error('cyclic') as Error & { cause?: unknown };
    cyclic.cause = cyclic;
    expect(isTimeoutError(cyclic)).toBe(false);
    const a = new Error('a') as Error & { cause?: unknown };
    const b = new Error('b', { cause: a });
    a.cause = b;
    expect(isTimeoutError(a)).toBe(false);
  });

  it('rejects everything else', () => {
    for (const value of [undefined, null, 0, 'TimeoutError', {}, new Error('x'), new DOMException('x', 'AbortError')]) {
      expect(isTimeoutError(value)).toBe(false);
    }
  });
});

describe('isAbortError()', () => {
  it('recognises DOMException, Node and peer abort errors', () => {
    const controller = new AbortController();
    controller.abort();
    expect(isAbortError(controller.signal.reason)).toBe(true);
    expect(isAbortError(Object.assign(new Error('aborted'), { code: 'ABORT_ERR' }))).toBe(true);
    class AbortError extends Error {
      override name = 'AbortError';
    }
    expect(isAbortError(new AbortError('peer'))).toBe(true);
    expect(isAbortError(new Error('wrapped', { cause: new AbortError('peer') }))).toBe(true);
  });

  it('does not count timeouts or plain errors as aborts', () => {
    expect(isAbortError(new TimeoutError())).toBe(false);
    expect(isAbortError(new Error('x'))).toBe(false);
    expect(isAbortError(undefined)).toBe(false);
    expect(isAbortError('AbortError')).toBe(false);
  });
});

describe('GatherError', () => {
  it('is an AggregateError whose cause is the first failure', () => {
    const first = new Error('first');
    const error = new GatherError([first, 'second']);
    expect(error).toBeInstanceOf(AggregateError);
    expect(error.name).toBe('GatherError');
    expect(error.errors).toEqual([first, 'second']);
    expect(error.cause).toBe(first);
    expect(error.message).toContain('first');
  });
});
