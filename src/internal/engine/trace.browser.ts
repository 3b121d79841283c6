/**
 * The `loopsafe:scope` TracingChannel in the browser build, which has no
 * `diagnostics_channel`: nothing is traced, and a scope pays nothing for it.
 * Replaces `trace.ts` there (see `tsup.config.ts`); same names, same types.
 *
 * @internal
 * @module
 */
import type { ScopeNode } from './scope-node.js';

/** Nobody can listen: always `false`. */
export function tracingScopes(): boolean {
  return false;
}

/** Runs `run` untraced (never called: {@link tracingScopes} is `false`). */
export function traceScope<T>(_scope: ScopeNode, run: () => Promise<T>): Promise<T> {
  return run();
}
