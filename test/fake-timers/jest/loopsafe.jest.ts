// jest's fake timers driving loopsafe. test/fake-timers.test.ts bundles this
// file (with loopsafe's sources) into a CommonJS test and runs real jest on it.
import * as loopsafe from '../../../src/index.js';
import { scenarios } from '../scenarios.js';

declare const jest: {
  useFakeTimers(): void;
  useRealTimers(): void;
  advanceTimersByTimeAsync(ms: number): Promise<void>;
};
declare function test(name: string, fn: () => Promise<void>): void;

for (const [name, scenario] of Object.entries(scenarios)) {
  test(name, async () => {
    jest.useFakeTimers();
    try {
      await scenario(
        loopsafe,
        (ms) => jest.advanceTimersByTimeAsync(ms),
        (condition, message) => {
          if (!condition) throw new Error(message);
        },
      );
    } finally {
      jest.useRealTimers();
    }
  });
}

test('real timers work again after useRealTimers()', async () => {
  const started = performance.now();
  await loopsafe.safeSleep(5);
  if (performance.now() - started < 4) throw new Error('woke early');
});
