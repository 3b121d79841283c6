/**
 * Test helpers: a manual clock for deterministic time, and leak assertions.
 * Import from `loopsafe/testing`.
 *
 * @module testing
 */
export { createManualClock, type ManualClock, type ManualClockOptions } from './testing/manual-clock.js';
export { abortListenerCount, activeTimerCount, assertNoLeaks, type LeakCheck } from './testing/leaks.js';
