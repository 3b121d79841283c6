/**
 * loopsafe: async-safety and event-loop resilience primitives for Node.js —
 * deadline scopes that compose, sleeps and waits that honour cancellation,
 * and nothing left running. No global is ever patched.
 *
 * @module loopsafe
 */
export { MAX_TIMER_DELAY_MS, systemClock, type Clock } from './clock.js';
export {
  BrokenCircuitError,
  GatherError,
  isAbortError,
  isBrokenCircuitError,
  isQueueFullError,
  isRateLimitError,
  isTimeoutError,
  QueueFullError,
  RateLimitError,
  TimeoutError,
  type BrokenCircuitErrorOptions,
  type RateLimitErrorOptions,
  type TimeoutErrorOptions,
} from './errors.js';
export {
  captureScopeStacks,
  currentScope,
  currentSignal,
  pendingScopes,
  timeoutContext,
  withDeadline,
  withTimeout,
  type PendingScope,
  type Scope,
  type ScopeOptions,
  type TimeoutContextOptions,
} from './scope.js';
export { safeSleep, type SleepOptions } from './sleep.js';
export { safeWaitFor, type WaitForOptions, type WaitForTask } from './wait-for.js';
export {
  backoff,
  progressiveDelay,
  type Backoff,
  type BackoffFunction,
  type BackoffOptions,
  type Jitter,
  type ProgressiveDelayOptions,
} from './backoff.js';
export {
  defaultShouldRetry,
  retry,
  type RetryAfterContext,
  type RetryContext,
  type RetryDecisionContext,
  type RetryEvent,
  type RetryOptions,
  type RetryOutcomeKind,
} from './retry.js';
export { parseRetryAfter } from './retry-after.js';
export { RetryBudget, type RetryBudgetOptions, type RetryBudgetSnapshot } from './retry-budget.js';
export {
  safeGather,
  safeGatherSettled,
  type GatherOptions,
  type GatherResults,
  type GatherSettledResults,
  type GatherTask,
} from './gather.js';
export { Mutex } from './mutex.js';
export { Semaphore, type AcquireOptions, type Permit, type SemaphoreOptions } from './semaphore.js';
export { safeRace, type RaceOptions, type RaceResult } from './race.js';
export { hedge, type HedgeOptions } from './hedge.js';
export {
  singleFlight,
  type SingleFlight,
  type SingleFlightCallOptions,
  type SingleFlightOptions,
} from './single-flight.js';
export {
  CircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitContext,
  type CircuitRunOptions,
} from './circuit-breaker.js';
export {
  KeyedRateLimiter,
  RateLimiter,
  type KeyedRateLimiterOptions,
  type RateLimitAcquireOptions,
  type RateLimiterOptions,
} from './rate-limiter.js';
export { safeAsync, withSafeAsync, type SafeAsyncFunction, type SafeAsyncPolicy } from './with-safe-async.js';
export {
  monitorEventLoop,
  yieldToEventLoop,
  type EventLoopMonitor,
  type EventLoopMonitorOptions,
  type EventLoopSample,
  type EventLoopThresholds,
} from './event-loop.js';
export { cooperativeForEach, type CooperativeOptions } from './cooperative.js';
export { LoadShedder, type LoadShedderOptions, type ShedDecision } from './load-shedding.js';
export { watchStalls, type StallWatcher, type WatchStallsOptions } from './stalls.js';
export {
  channelNames,
  type CircuitMessage,
  type CircuitState,
  type CircuitTransitionReason,
  type GatherCancelCause,
  type GatherCancelMessage,
  type HedgeMessage,
  type HedgeTrigger,
  type OverloadReason,
  type QueueFullMessage,
  type RaceMessage,
  type RateLimitMessage,
  type RetryMessage,
  type ScopeOutcome,
  type ScopeTraceContext,
  type ShedMessage,
  type SingleFlightEvent,
  type SingleFlightMessage,
  type StallKind,
  type StallMessage,
  type TimeoutMessage,
} from './channels.js';
