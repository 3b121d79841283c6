// node:test's own fake timers, `mock.timers`, driving loopsafe: run by
// test/fake-timers.test.ts as `node --import tsx --test` (a real node:test run).
// Only `setTimeout` is mocked, as in the reported case: `performance.now()`
// does not move, and loopsafe must still treat a fired timer as due.
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as realImmediate } from 'node:timers';
import * as loopsafe from '../../src/index.js';
import { scenarios } from './scenarios.js';

const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => realImmediate(resolve));
};

// Warm the code up on real timers first: the mock leaves performance.now() alone, so the real time a
// cold first call takes would otherwise land between the deadlines a scenario opens together.
await loopsafe.withTimeout(1_000, () => loopsafe.safeWaitFor(Promise.resolve(), 1_000));
await loopsafe.retry(() => 1, { timeout: 1_000 });
await new loopsafe.Semaphore(1).run(() => loopsafe.safeSleep(1));

for (const [name, scenario] of Object.entries(scenarios)) {
  void test(name, async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      await scenario(
        loopsafe,
        async (ms) => {
          await settle();
          mock.timers.tick(ms);
          await settle();
        },
        (condition, message) => {
          assert.ok(condition, message);
        },
      );
    } finally {
      mock.timers.reset();
    }
  });
}

void test('real timers work again once the mock is gone', async () => {
  const started = performance.now();
  await loopsafe.safeSleep(5);
  assert.ok(performance.now() - started >= 4);
});
