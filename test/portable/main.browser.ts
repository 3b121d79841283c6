/**
 * Entry point of the portable suite in a browser: runs it against the
 * package's `browser` build and leaves the results on `globalThis` for the
 * runner (playwright-core) to read.
 */
import { runPortableSuite, type PortableResult } from './suite.js';

const page = globalThis as { loopsafeResults?: PortableResult[]; loopsafeError?: string };

runPortableSuite({ runtime: 'browser' }).then(
  (results) => {
    page.loopsafeResults = results;
  },
  (error: unknown) => {
    page.loopsafeError = String(error);
  },
);
