/**
 * OpenTelemetry for loopsafe: a span per named scope, nested as the scopes
 * nest and active inside them, retry waits and circuit transitions as span
 * events, and counters for timeouts, retries, sheds and circuit transitions.
 * Import from `loopsafe/otel`; `@opentelemetry/api` (1.x) is an optional peer
 * dependency that only this entry point imports.
 *
 * It reads loopsafe through its diagnostics channels only (by name), so it
 * instruments every copy of loopsafe in the process, and the core never loads
 * OpenTelemetry.
 *
 * @module otel
 */
import {
  context as otelContext,
  diag,
  metrics,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type MeterProvider,
  type Span,
  type TracerProvider,
} from '@opentelemetry/api';
import diagnosticsChannel from 'node:diagnostics_channel';
import type { AsyncLocalStorage } from 'node:async_hooks';
import {
  channelNames,
  type RetryMessage,
  type ScopeTraceContext,
  type ShedMessage,
  type TimeoutMessage,
} from './channels.js';
import type { EventLoopMonitor } from './event-loop.js';
import { assertOptions, describe } from './internal/validate.js';

/**
 * Options for {@link instrument}.
 *
 * @category OpenTelemetry
 */
export interface InstrumentOptions {
  /**
   * Where spans go.
   * @defaultValue the global tracer provider (`trace.getTracerProvider()`)
   */
  tracerProvider?: TracerProvider | undefined;
  /**
   * Where the counters and the lag histogram go.
   * @defaultValue the global meter provider (`metrics.getMeterProvider()`)
   */
  meterProvider?: MeterProvider | undefined;
  /**
   * An event-loop monitor (what `monitorEventLoop()` returns): each window's
   * worst lag is recorded in the `loopsafe.event_loop.lag` histogram, and its
   * utilisation observed as `loopsafe.event_loop.utilization`, at each metric
   * collection. Disposing the instrumentation does not stop the monitor.
   * @defaultValue none: no event-loop metrics
   */
  monitor?: EventLoopMonitor | undefined;
}

/**
 * A running instrumentation, from {@link instrument}. Dispose it (or call
 * `dispose()`) to stop: no new span is made, every open one is ended (with
 * `loopsafe.outcome: 'unfinished'`), and nothing stays subscribed to any
 * loopsafe channel.
 *
 * @category OpenTelemetry
 */
export interface Instrumentation extends Disposable {
  /** Stops the instrumentation (idempotent). */
  dispose(): void;
  /** `false` once disposed. */
  readonly active: boolean;
}

/** What `loopsafe:circuit` publishes (by a circuit breaker), as far as it is read here. */
interface CircuitMessage {
  readonly name?: unknown;
  readonly from?: unknown;
  readonly to?: unknown;
}

const OPTIONS = new Set(['tracerProvider', 'meterProvider', 'monitor']);

/** The token a context manager's `attach` returns (OpenTelemetry's AsyncLocalStorageContextManager 2.x). */
interface AttachToken {
  dispose?: () => void;
  [Symbol.dispose]?: () => void;
}

/**
 * A store for `channel.start.bindStore` that makes an OpenTelemetry context
 * the active one inside the scope: through `context.with` (how
 * `diagnostics_channel` enters a store up to Node 25), or the context
 * manager's `attach` (Node 26 enters stores with `withScope`, which needs an
 * imperative enter; OpenTelemetry's AsyncLocalStorageContextManager 2.x has
 * one). Without either, spans are still made and nested, but not set active.
 */
const otelStore = {
  run<R>(value: Context, fn: (...args: unknown[]) => R, ...args: unknown[]): R {
    return otelContext.with(value, fn, undefined, ...args);
  },
  withScope(value: Context): Disposable {
    const api = otelContext as unknown as { _getContextManager?: () => { attach?: (value: Context) => AttachToken } };
    const token = api._getContextManager?.().attach?.(value);
    return {
      [Symbol.dispose]: () => {
        if (token === undefined) return;
        const dispose = token[Symbol.dispose];
        if (typeof dispose === 'function') dispose.call(token);
        else token.dispose?.();
      },
    };
  },
};

/**
 * A subscriber that never throws: `diagnostics_channel` reports a throwing
 * subscriber as an uncaught exception, which would take the process down for
 * a broken exporter. The error goes to OpenTelemetry's diagnostic logger.
 */
function guarded(handler: (message: unknown) => void): (message: unknown) => void {
  return (message) => {
    try {
      handler(message);
    } catch (error) {
      diag.error('loopsafe/otel: a subscriber failed', error);
    }
  };
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function errorMessage(error: unknown): string {
  try {
    if (error instanceof Error) return `${error.name}: ${error.message}`;
    return String(error);
  } catch {
    return 'unprintable error';
  }
}

function assertProvider(name: string, value: unknown, method: string): void {
  if (value === undefined) return;
  if (
    (typeof value !== 'object' && typeof value !== 'function') ||
    value === null ||
    typeof (value as Record<string, unknown>)[method] !== 'function'
  ) {
    throw new TypeError(
      `Expected \`${name}\` to be an OpenTelemetry ${name} (with ${method}()), got ${describe(value)}`,
    );
  }
}

/**
 * Instruments loopsafe with OpenTelemetry, until disposed.
 *
 * - **Spans.** Each named scope (a `name` option, the function's own name, a
 *   policy's name; not a primitive's default such as `'withTimeout'`) becomes
 *   a span, a child of the span active where the scope opened, and the active
 *   span inside it: spans made in the scope's function (yours, an HTTP
 *   client's) are its children. A retry's attempts are children of the retry.
 *   Attributes: `loopsafe.timeout_ms` (when the scope has a timeout of its
 *   own) and `loopsafe.outcome` (`ok`, `timeout`, `cancelled`, `error`); the
 *   status is ERROR on `timeout` and `error`, with the exception recorded. A
 *   span ends when its scope settles, at its deadline when its function
 *   ignores its signal.
 * - **Span events** on the active span: `loopsafe.retry` before each retry
 *   wait (`loopsafe.attempt`, `loopsafe.delay_ms`, the error), `loopsafe.circuit`
 *   on each circuit breaker transition (`loopsafe.circuit.from`, `.to`),
 *   `loopsafe.shed` when a load shedder turns work away.
 * - **Metrics.** Counters `loopsafe.timeouts` (by `loopsafe.scope`),
 *   `loopsafe.retries` (by `loopsafe.scope`), `loopsafe.sheds` (by
 *   `loopsafe.reason`) and `loopsafe.circuit.transitions` (by
 *   `loopsafe.circuit`, `loopsafe.circuit.from`, `loopsafe.circuit.to`); with a
 *   `monitor`, the `loopsafe.event_loop.lag` histogram (ms) and the
 *   `loopsafe.event_loop.utilization` gauge.
 *
 * It subscribes to loopsafe's diagnostics channels by name: every copy of
 * loopsafe in the process is instrumented, and a channel nobody publishes on
 * yet (`loopsafe:circuit` without a breaker) costs nothing. Instrumenting
 * twice makes two spans per scope: dispose the first one before.
 *
 * @param options - `tracerProvider`, `meterProvider`, `monitor`.
 * @returns A disposable {@link Instrumentation}.
 * @throws `TypeError` (synchronously) for an unknown option, or a provider or monitor of the wrong shape.
 * @category OpenTelemetry
 * @example
 * ```ts
 * import { context } from '@opentelemetry/api';
 * import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
 * import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
 * import { withTimeout } from 'loopsafe';
 * import { instrument } from 'loopsafe/otel';
 *
 * const exporter = new InMemorySpanExporter();
 * const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
 * context.setGlobalContextManager(new AsyncLocalStorageContextManager());
 *
 * {
 *   using _instrumentation = instrument({ tracerProvider });
 *   await withTimeout(1_000, async () => {
 *     // The scope's span is active here: this span is its child.
 *     tracerProvider.getTracer('app').startActiveSpan('query', (span) => span.end());
 *   }, { name: 'load-user' });
 * }
 * context.disable();
 * const [query, scope] = exporter.getFinishedSpans();
 * console.log(scope?.name, scope?.attributes['loopsafe.outcome']); // 'load-user' 'ok'
 * console.log(query?.parentSpanContext?.spanId === scope?.spanContext().spanId); // true
 * ```
 */
export function instrument(options?: InstrumentOptions): Instrumentation {
  assertOptions('instrument', options, OPTIONS);
  assertProvider('tracerProvider', options?.tracerProvider, 'getTracer');
  assertProvider('meterProvider', options?.meterProvider, 'getMeter');
  const monitor = options?.monitor;
  const given: unknown = monitor;
  if (
    given !== undefined &&
    (typeof given !== 'object' || given === null || typeof (given as Partial<EventLoopMonitor>).snapshot !== 'function')
  ) {
    throw new TypeError(`Expected \`monitor\` to be what monitorEventLoop() returns, got ${describe(monitor)}`);
  }
  const tracer = (options?.tracerProvider ?? trace.getTracerProvider()).getTracer('loopsafe');
  const meter = (options?.meterProvider ?? metrics.getMeterProvider()).getMeter('loopsafe');
  const timeouts = meter.createCounter('loopsafe.timeouts', {
    description: 'Timeouts loopsafe rejected with (a scope or a wait passed its deadline)',
  });
  const retries = meter.createCounter('loopsafe.retries', { description: 'Retries loopsafe waited for' });
  const sheds = meter.createCounter('loopsafe.sheds', { description: 'Work a load shedder turned away' });
  const transitions = meter.createCounter('loopsafe.circuit.transitions', {
    description: 'Circuit breaker state transitions',
  });

  /** The span of each traced scope still open, by its trace context. */
  const open = new Map<ScopeTraceContext, Span>();
  let active = true;

  const transform = (message: ScopeTraceContext): Context => {
    const parent = otelContext.active();
    if (!active || !message.named) return parent;
    try {
      const attributes: Attributes = {};
      if (isFiniteNumber(message.timeoutMs)) attributes['loopsafe.timeout_ms'] = message.timeoutMs;
      const span = tracer.startSpan(message.name, { attributes }, parent);
      open.set(message, span);
      return trace.setSpan(parent, span);
    } catch (error) {
      // A store transform that throws is an uncaught exception to diagnostics_channel: a broken
      // tracer costs the span, never the process.
      diag.error('loopsafe/otel: could not start a span', error);
      return parent;
    }
  };

  const onScopeEnd = guarded((message: unknown): void => {
    const traced = message as ScopeTraceContext;
    const span = open.get(traced);
    if (span === undefined) return;
    open.delete(traced);
    const { outcome = 'error', error } = traced;
    span.setAttribute('loopsafe.outcome', outcome);
    if (outcome === 'timeout' || outcome === 'error') {
      if (error instanceof Error) span.recordException(error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(error) });
    }
    span.end();
  });

  const activeSpan = (): Span | undefined => trace.getSpan(otelContext.active());

  const onTimeout = guarded((message: unknown): void => {
    const { scopeName } = message as TimeoutMessage;
    timeouts.add(1, { 'loopsafe.scope': scopeName });
  });
  const onRetry = guarded((message: unknown): void => {
    const { name, attempt, delayMs, error } = message as RetryMessage;
    retries.add(1, { 'loopsafe.scope': name });
    activeSpan()?.addEvent('loopsafe.retry', {
      'loopsafe.scope': name,
      'loopsafe.attempt': attempt,
      'loopsafe.delay_ms': delayMs,
      'exception.message': errorMessage(error),
    });
  });
  const onShed = guarded((message: unknown): void => {
    const { reason, lagMs, retryAfterSeconds } = message as ShedMessage;
    sheds.add(1, { 'loopsafe.reason': reason });
    activeSpan()?.addEvent('loopsafe.shed', {
      'loopsafe.reason': reason,
      'loopsafe.lag_ms': lagMs,
      'loopsafe.retry_after_s': retryAfterSeconds,
    });
  });
  const onCircuit = guarded((message: unknown): void => {
    // Published by a circuit breaker; read defensively: only what is there, as strings.
    const { name, from, to } = (typeof message === 'object' && message !== null ? message : {}) as CircuitMessage;
    const attributes: Attributes = {
      'loopsafe.circuit': String(name),
      'loopsafe.circuit.from': String(from),
      'loopsafe.circuit.to': String(to),
    };
    transitions.add(1, attributes);
    activeSpan()?.addEvent('loopsafe.circuit', attributes);
  });

  const scopes = diagnosticsChannel.tracingChannel<Context, ScopeTraceContext>(channelNames.scope);
  scopes.start.bindStore(otelStore as unknown as AsyncLocalStorage<Context>, transform);
  const subscriptions: [string, (message: unknown) => void][] = [
    // The TracingChannel's asyncEnd: the scope settled (the only one of its five events needed here).
    [`tracing:${channelNames.scope}:asyncEnd`, onScopeEnd],
    [channelNames.timeout, onTimeout],
    [channelNames.retry, onRetry],
    [channelNames.shed, onShed],
    ['loopsafe:circuit', onCircuit],
  ];
  for (const [name, handler] of subscriptions) diagnosticsChannel.subscribe(name, handler);

  let stopMetrics: (() => void) | undefined;
  if (monitor !== undefined) {
    const lag = meter.createHistogram('loopsafe.event_loop.lag', {
      description: 'The worst event-loop lag of each monitor window',
      unit: 'ms',
    });
    const utilization = meter.createObservableGauge('loopsafe.event_loop.utilization', {
      description: 'Event-loop utilisation of the last monitor window (0 to 1)',
      unit: '1',
    });
    let lastWindow: number | undefined;
    // Observable callbacks run first in a collection: the window recorded here is in the same export.
    const observe = (result: { observe(value: number): void }): void => {
      const sample = monitor.snapshot();
      if (sample.windowMs === 0) return;
      result.observe(sample.utilization);
      if (sample.at === lastWindow) return;
      lastWindow = sample.at;
      lag.record(sample.maxLagMs);
    };
    utilization.addCallback(observe);
    stopMetrics = () => {
      utilization.removeCallback(observe);
    };
  }

  const dispose = (): void => {
    if (!active) return;
    active = false;
    scopes.start.unbindStore(otelStore as unknown as AsyncLocalStorage<Context>);
    for (const [name, handler] of subscriptions) diagnosticsChannel.unsubscribe(name, handler);
    stopMetrics?.();
    // A span whose scope is still open is ended now: its outcome is not known.
    for (const span of open.values()) {
      span.setAttribute('loopsafe.outcome', 'unfinished');
      span.end();
    }
    open.clear();
  };

  return {
    dispose,
    [Symbol.dispose]: dispose,
    get active() {
      return active;
    },
  };
}
