/**
 * The `loopsafe:scope` TracingChannel: every scope a primitive runs a function
 * in (`runScoped`, a gather) is traced as `tracePromise` traces a call —
 * `start`, `end` once the synchronous part is done, then `error` (on a
 * rejection), `asyncStart` and `asyncEnd` when the scope's outcome is known.
 *
 * The function runs inside `start.runStores(context, …)`: a store bound with
 * `channel.start.bindStore(als, transform)` is active inside the scope's
 * function and everything it starts, which is how APM tools bind their own
 * context to a span. When nobody listens, a scope pays for one
 * `hasSubscribers` read and nothing else.
 *
 * @internal
 * @module
 */
import type { ScopeOutcome, ScopeTraceContext } from '../../channels.js';
import { isTimeoutError } from '../../errors.js';
import { traceChannels } from '../platform.js';
import type { ScopeNode } from './scope-node.js';

// A literal name, as in publish.ts: test/tracing-channel.test.ts checks it is `channelNames.scope`.
const scopeChannel = /* @__PURE__ */ traceChannels('loopsafe:scope');

/** Whether anything listens on `loopsafe:scope` (a subscriber on any of its five channels, or a bound store). */
export function tracingScopes(): boolean {
  return scopeChannel.hasSubscribers;
}

/** A mutable context, as TracingChannel contexts are: the outcome is written in when it is known. */
interface Trace extends ScopeTraceContext {
  outcome: ScopeOutcome | undefined;
  result: unknown;
  error: unknown;
}

/** How a scope ended, from the rejection its owner's promise settled with. */
function outcomeOf(scope: ScopeNode, error: unknown): ScopeOutcome {
  if (scope.cancelled && error === scope.reason) {
    return scope.deadlinePassed || isTimeoutError(error) ? 'timeout' : 'cancelled';
  }
  return isTimeoutError(error) ? 'timeout' : 'error';
}

/**
 * Runs `run` — which starts `scope`'s owner and returns the promise of its
 * outcome — traced on `loopsafe:scope`. Call only when {@link tracingScopes}
 * is `true`. Returns the promise the caller receives: `run`'s promise,
 * followed by the reactions that publish the outcome.
 */
export function traceScope<T>(scope: ScopeNode, run: () => Promise<T>): Promise<T> {
  const channels = scopeChannel;
  const context: Trace = {
    name: scope.name,
    named: scope.named,
    timeoutMs: scope.timeoutMs,
    deadline: scope.deadline,
    scope,
    outcome: undefined,
    result: undefined,
    error: undefined,
  };
  const fulfilled = (value: T): T => {
    context.outcome = 'ok';
    context.result = value;
    channels.asyncStart.publish(context);
    channels.asyncEnd.publish(context);
    return value;
  };
  const rejected = (error: unknown): never => {
    context.outcome = outcomeOf(scope, error);
    context.error = error;
    channels.error.publish(context);
    channels.asyncStart.publish(context);
    channels.asyncEnd.publish(context);
    throw error;
  };
  return channels.start.runStores(context, () => {
    try {
      // The reactions are attached inside the stores: `asyncStart` and `asyncEnd` subscribers see them.
      return run().then(fulfilled, rejected);
    } catch (error) {
      // The engine's runners settle through their promise; a throw here is a bug, still traced.
      context.outcome = 'error';
      context.error = error;
      channels.error.publish(context);
      throw error;
    } finally {
      channels.end.publish(context);
    }
  });
}
