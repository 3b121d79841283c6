/**
 * The performance targets of issue 13, in one place: each bench measures its
 * own (`target(spec, value)` in harness.ts), and bench/report.ts lists them
 * all, in this order, with a column per runtime — "—" where a runtime has no
 * measurement. A ratio target divides two rows measured in the same process
 * run; the figure that counts is Node 24's, Node 20's is reported beside it.
 */

/** A target: the measured value must be `<= limit`. */
export interface TargetSpec {
  /** Stable id: the key a later run is compared on (bench/results/<runtime>/previous.json). */
  readonly id: string;
  /** The bench that measures it (bench/results/<runtime>/<bench>.json). */
  readonly bench: string;
  readonly description: string;
  readonly limit: number;
  /** Shown after the value: `×` for a ratio, ` ms`, ` MB`, or `''` for a count. */
  readonly unit: string;
}

const spec = (id: string, bench: string, description: string, limit: number, unit = '×'): TargetSpec => ({
  id,
  bench,
  description,
  limit,
  unit,
});

/** The loopsafe candidates of bench/memory.bench.ts that carry a heap target (row names). */
export const memoryCandidates = [
  'loopsafe safeWaitFor(fn, { signal, timeout })',
  'loopsafe withTimeout(fn, { signal })',
  'loopsafe retry(fn, { signal })',
  'loopsafe safeGather([fn], { signal })',
] as const;

export const targets = {
  timeoutPromise: spec('timeout.promise', 'timeout', '`safeWaitFor(promise)` vs hand-written race', 1.2),
  timeoutParent: spec(
    'timeout.parent',
    'timeout',
    '`safeWaitFor(fn, { signal })` vs hand-written inner AbortController',
    1.25,
  ),
  withTimeout: spec('timeout.withTimeout', 'timeout', '`withTimeout(fn)` vs hand-written race', 2),
  tracingOff: spec(
    'tracing.off',
    'tracing',
    '`withTimeout(fn)` with nobody on `loopsafe:scope` vs the engine before the tracing hook',
    1.05,
  ),
  tracingOtel: spec(
    'tracing.otel',
    'tracing',
    'a named `withTimeout` under `loopsafe/otel` vs a hand-made `startActiveSpan` around it',
    1.5,
  ),
  retryTimeout: spec('retry.timeout', 'retry', '`retry(fn, { timeout })` success vs hand-written loop', 5),
  gatherPool: spec(
    'gather.poolAbort',
    'gather',
    '`safeGather` (immediate workload) vs hand-written pool + AbortController',
    2,
  ),
  gatherPMap: spec('gather.vsPMap', 'gather', '`safeGather` (immediate workload) vs p-map', 0.8),
  failFast99: spec('gather.failFast99', 'gather', 'fail-fast rejection, 99 running siblings', 0.5, ' ms'),
  failFast99Aborted: spec(
    'gather.failFast99.notAborted',
    'gather',
    'fail-fast, 99 running siblings: siblings not aborted by the rejection',
    0,
    '',
  ),
  failFast9999: spec('gather.failFast9999', 'gather', 'fail-fast rejection, 9,999 running siblings', 20, ' ms'),
  failFast9999Aborted: spec(
    'gather.failFast9999.notAborted',
    'gather',
    'fail-fast, 9,999 running siblings: siblings not aborted by the rejection',
    0,
    '',
  ),
  httpScopedFetch: spec(
    'http.scopedFetch',
    'http',
    '`scopedFetch` in a request scope vs `fetch` + `AbortSignal.timeout`, local upstream',
    1.05,
  ),
  httpFastify: spec(
    'http.fastify',
    'http',
    'Fastify route with the loopsafe plugin vs without, time per request under autocannon (≥ 0.95× the requests/s)',
    1.053,
  ),
  breakerVsCockatiel: spec(
    'policies.breakerVsCockatiel',
    'policies',
    '`CircuitBreaker.run(fn)` (closed) vs cockatiel 4 `circuitBreaker().execute(fn)`',
    1,
  ),
  breakerVsBare: spec(
    'policies.breakerVsBare',
    'policies',
    '`CircuitBreaker.run(fn)` (closed) vs a bare call of the async function',
    2,
  ),
  limiterAcquire: spec(
    'policies.limiterAcquire',
    'policies',
    '`RateLimiter.acquire()` with tokens available, per call',
    0.3,
    ' µs',
  ),
  raceVsAcx: spec('race.vsAcx', 'race', '`safeRace` of 2 tasks vs abort-controller-x `race`', 1.5),
  memoryListeners: spec(
    'memory.listeners',
    'memory',
    'abort listeners left on the parent after 100,000 ops (every loopsafe candidate)',
    0,
    '',
  ),
} as const satisfies Record<string, TargetSpec>;

/** The heap target of a memory candidate (ids as in the figures committed before issue 13). */
export function memoryTarget(name: (typeof memoryCandidates)[number]): TargetSpec {
  return spec(
    `memory.${name}`,
    'memory',
    `\`${name.replace(/^loopsafe /, '')}\`: heap retained after 100,000 ops`,
    1,
    ' MB',
  );
}

/** Every target, in the order the report lists them. */
export const allTargets: readonly TargetSpec[] = [
  ...Object.values(targets).filter((t) => t.bench !== 'memory'),
  ...memoryCandidates.map(memoryTarget),
  targets.memoryListeners,
];
