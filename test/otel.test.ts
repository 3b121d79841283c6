/**
 * loopsafe/otel against the real OpenTelemetry SDK: spans exported by
 * sdk-trace-base's InMemorySpanExporter, context carried by
 * context-async-hooks' AsyncLocalStorageContextManager, metrics collected by
 * sdk-metrics' MeterProvider.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  AggregationTemporality,
  DataPointType,
  MeterProvider,
  MetricReader,
  type HistogramMetricData,
  type MetricData,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  channelNames,
  LoadShedder,
  monitorEventLoop,
  retry,
  safeGather,
  safeSleep,
  TimeoutError,
  withSafeAsync,
  withTimeout,
  type EventLoopSample,
} from '../src/index.js';
import { instrument, type Instrumentation } from '../src/otel.js';
import { createManualClock } from '../src/testing.js';
import { flush, never, observe } from './fixtures/observe.js';

/** A reader the test collects from by hand. */
class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

const contextManager = new AsyncLocalStorageContextManager();
const exporter = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const app = tracerProvider.getTracer('app');
let reader: TestReader;
let meterProvider: MeterProvider;
let instrumentation: Instrumentation | undefined;

const scopeChannels = diagnosticsChannel.tracingChannel(channelNames.scope);
const allChannels = [
  channelNames.timeout,
  channelNames.retry,
  channelNames.shed,
  channelNames.gatherCancel,
  channelNames.stall,
  'loopsafe:circuit',
];

/** Whether anything at all listens on any loopsafe channel. */
function anySubscriber(): boolean {
  return scopeChannels.hasSubscribers || allChannels.some((name) => diagnosticsChannel.hasSubscribers(name));
}

beforeAll(() => {
  context.setGlobalContextManager(contextManager);
});

afterAll(() => {
  context.disable();
});

beforeEach(() => {
  exporter.reset();
  reader = new TestReader();
  meterProvider = new MeterProvider({ readers: [reader] });
  instrumentation = instrument({ tracerProvider, meterProvider });
});

afterEach(async () => {
  instrumentation?.dispose();
  instrumentation = undefined;
  await meterProvider.shutdown();
  expect(anySubscriber()).toBe(false);
});

function spans(): ReadableSpan[] {
  return exporter.getFinishedSpans();
}

function span(name: string): ReadableSpan {
  const found = spans().filter((candidate) => candidate.name === name);
  expect(found, `one span named ${name}`).toHaveLength(1);
  return found[0] as ReadableSpan;
}

function isChildOf(child: ReadableSpan, parent: ReadableSpan): boolean {
  return (
    child.parentSpanContext?.spanId === parent.spanContext().spanId &&
    child.spanContext().traceId === parent.spanContext().traceId
  );
}

async function metric(name: string): Promise<MetricData | undefined> {
  const { resourceMetrics } = await reader.collect();
  for (const scope of resourceMetrics.scopeMetrics) {
    const found = scope.metrics.find((candidate) => candidate.descriptor.name === name);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** A counter's data points, as `{ attributes, value }`. */
async function counted(name: string): Promise<{ attributes: Record<string, unknown>; value: unknown }[]> {
  const data = await metric(name);
  return (data?.dataPoints ?? []).map((point) => ({ attributes: point.attributes, value: point.value }));
}

describe('spans per named scope', () => {
  it('nested scopes give nested spans, in one trace', async () => {
    await withTimeout(
      1_000,
      () => withTimeout(500, () => withTimeout(100, () => 'deep', { name: 'inner' }), { name: 'middle' }),
      { name: 'outer' },
    );
    const outer = span('outer');
    const middle = span('middle');
    const inner = span('inner');
    expect(outer.parentSpanContext).toBeUndefined();
    expect(isChildOf(middle, outer)).toBe(true);
    expect(isChildOf(inner, middle)).toBe(true);
  });

  it("the scope's span is active inside it: a user span made there, before and after an await, is its child", async () => {
    const clock = createManualClock();
    const run = observe(
      withTimeout(
        1_000,
        async () => {
          app.startActiveSpan('before', (s) => {
            s.end();
          });
          await safeSleep(10);
          app.startActiveSpan('after', (s) => {
            s.end();
          });
          return trace.getActiveSpan()?.spanContext().spanId;
        },
        { name: 'work', clock },
      ),
    );
    await clock.advance(10);
    expect(run.outcome.status).toBe('fulfilled');
    const work = span('work');
    expect(isChildOf(span('before'), work)).toBe(true);
    expect(isChildOf(span('after'), work)).toBe(true);
    expect((run.outcome as { value: unknown }).value).toBe(work.spanContext().spanId);
    // Outside the scope, the context is what it was.
    expect(trace.getActiveSpan()).toBeUndefined();
  });

  it("a scope opened inside the user's span is its child", async () => {
    await app.startActiveSpan('request', async (request) => {
      await withTimeout(100, () => 'x', { name: 'db' });
      request.end();
    });
    expect(isChildOf(span('db'), span('request'))).toBe(true);
  });

  it('unnamed scopes make no span: a named scope inside one is a child of the span around it', async () => {
    await withTimeout(
      1_000,
      () =>
        withTimeout(500, async () => {
          await Promise.resolve();
          return withTimeout(100, () => 1, { name: 'named' });
        }),
      { name: 'top' },
    );
    expect(spans().map((s) => s.name)).toEqual(['named', 'top']);
    expect(isChildOf(span('named'), span('top'))).toBe(true);
  });

  it("ok: loopsafe.outcome 'ok', loopsafe.timeout_ms, status unset", async () => {
    await withTimeout(250, () => 'fine', { name: 'ok-scope' });
    const ok = span('ok-scope');
    expect(ok.attributes).toEqual({ 'loopsafe.timeout_ms': 250, 'loopsafe.outcome': 'ok' });
    expect(ok.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('no timeout of its own: no loopsafe.timeout_ms', async () => {
    await retry(() => 'x', { name: 'unbounded' });
    expect(span('unbounded').attributes).toEqual({ 'loopsafe.outcome': 'ok' });
  });

  it("timeout: ERROR status, 'timeout', the TimeoutError recorded; the span ends at the deadline", async () => {
    const clock = createManualClock();
    const run = observe(withTimeout(50, () => never(), { name: 'hung', clock }));
    await clock.advance(49);
    expect(spans()).toEqual([]);
    await clock.advance(1);
    expect(run.outcome.status).toBe('rejected');
    const hung = span('hung');
    expect(hung.attributes).toMatchObject({ 'loopsafe.timeout_ms': 50, 'loopsafe.outcome': 'timeout' });
    expect(hung.status.code).toBe(SpanStatusCode.ERROR);
    expect(hung.status.message).toContain('TimeoutError');
    expect(hung.events.map((event) => event.name)).toEqual(['exception']);
    expect(hung.events[0]?.attributes?.['exception.type']).toBe('TimeoutError');
  });

  it("cancelled: 'cancelled', status unset (the caller went away: not this scope's failure)", async () => {
    const controller = new AbortController();
    const run = observe(withTimeout(1_000, () => never(), { name: 'left', signal: controller.signal }));
    controller.abort(new Error('client gone'));
    await flush();
    expect(run.outcome.status).toBe('rejected');
    const left = span('left');
    expect(left.attributes['loopsafe.outcome']).toBe('cancelled');
    expect(left.status.code).toBe(SpanStatusCode.UNSET);
  });

  it("error: ERROR status with the error's message, the exception recorded", async () => {
    const failure = new RangeError('bad row');
    await expect(
      withTimeout(
        100,
        async () => {
          await Promise.resolve();
          throw failure;
        },
        { name: 'failing' },
      ),
    ).rejects.toBe(failure);
    const failing = span('failing');
    expect(failing.attributes['loopsafe.outcome']).toBe('error');
    expect(failing.status).toEqual({ code: SpanStatusCode.ERROR, message: 'RangeError: bad row' });
    expect(failing.events[0]?.attributes?.['exception.message']).toBe('bad row');
  });

  it("a gather's tasks run in its span: their spans are its children", async () => {
    await safeGather(
      [
        () => {
          app.startActiveSpan('task 0', (s) => {
            s.end();
          });
        },
        async () => {
          await Promise.resolve();
          app.startActiveSpan('task 1', (s) => {
            s.end();
          });
        },
      ],
      { name: 'fan-out' },
    );
    const fanOut = span('fan-out');
    expect(isChildOf(span('task 0'), fanOut)).toBe(true);
    expect(isChildOf(span('task 1'), fanOut)).toBe(true);
  });
});

describe('retries, circuits, sheds', () => {
  it("retry: the attempts are the retry's children; each wait is a loopsafe.retry event on its span", async () => {
    const clock = createManualClock();
    const failure = new Error('503');
    const run = observe(
      retry(
        ({ attempt }) => {
          if (attempt === 1) throw failure;
          return 'ok';
        },
        { name: 'fetch', backoff: { initialMs: 20, jitter: 'none' }, clock },
      ),
    );
    await clock.advance(20);
    expect(run.outcome).toEqual({ status: 'fulfilled', value: 'ok' });
    const fetch = span('fetch');
    const first = span('fetch attempt 1');
    const second = span('fetch attempt 2');
    expect(isChildOf(first, fetch)).toBe(true);
    expect(isChildOf(second, fetch)).toBe(true);
    expect(first.attributes['loopsafe.outcome']).toBe('error');
    expect(second.attributes['loopsafe.outcome']).toBe('ok');
    expect(fetch.events.map((event) => [event.name, event.attributes])).toEqual([
      [
        'loopsafe.retry',
        {
          'loopsafe.scope': 'fetch',
          'loopsafe.attempt': 1,
          'loopsafe.delay_ms': 20,
          'exception.message': 'Error: 503',
        },
      ],
    ]);
    expect(await counted('loopsafe.retries')).toEqual([{ attributes: { 'loopsafe.scope': 'fetch' }, value: 1 }]);
  });

  it('withSafeAsync with retry: one span per call, the attempts its children, the retry waits its events', async () => {
    let calls = 0;
    const getUser = withSafeAsync(
      function getUser(id: string) {
        calls++;
        if (calls === 1) throw new Error('cold cache');
        return id;
      },
      { timeout: 1_000, retry: { backoff: { initialMs: 0 } } },
    );
    await expect(getUser('ada')).resolves.toBe('ada');
    const call = span('getUser');
    expect(spans().map((s) => s.name)).toEqual(['getUser attempt 1', 'getUser attempt 2', 'getUser']);
    expect(isChildOf(span('getUser attempt 1'), call)).toBe(true);
    expect(isChildOf(span('getUser attempt 2'), call)).toBe(true);
    expect(call.events.map((event) => event.name)).toEqual(['loopsafe.retry']);
  });

  it('loopsafe.timeouts counts timeouts by scope', async () => {
    const clock = createManualClock();
    const runs = [
      observe(withTimeout(10, () => never(), { name: 'a', clock })),
      observe(withTimeout(10, () => never(), { name: 'a', clock })),
      observe(withTimeout(10, () => never(), { name: 'b', clock })),
    ];
    await clock.advance(10);
    expect(runs.map((run) => run.outcome.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect((runs[0]?.outcome as { reason: unknown }).reason).toBeInstanceOf(TimeoutError);
    expect(await counted('loopsafe.timeouts')).toEqual([
      { attributes: { 'loopsafe.scope': 'a' }, value: 2 },
      { attributes: { 'loopsafe.scope': 'b' }, value: 1 },
    ]);
  });

  it('loopsafe:circuit: a transition is an event on the active span, and counted', async () => {
    // Published as a circuit breaker does (payload at least { name, from, to }).
    const circuit = diagnosticsChannel.channel('loopsafe:circuit');
    await withTimeout(
      100,
      () => {
        circuit.publish({ name: 'payments', from: 'closed', to: 'open' });
      },
      { name: 'charge' },
    );
    circuit.publish(null); // a malformed message is tolerated
    const transition = {
      'loopsafe.circuit': 'payments',
      'loopsafe.circuit.from': 'closed',
      'loopsafe.circuit.to': 'open',
    };
    expect(span('charge').events.map((event) => [event.name, event.attributes])).toEqual([
      ['loopsafe.circuit', transition],
    ]);
    const points = await counted('loopsafe.circuit.transitions');
    expect(points).toContainEqual({ attributes: transition, value: 1 });
    expect(points).toHaveLength(2);
  });

  it('loopsafe.sheds counts what a load shedder turned away, an event on the active span', async () => {
    const sample: EventLoopSample = {
      at: 0,
      windowMs: 1_000,
      p50LagMs: 300,
      p99LagMs: 400,
      maxLagMs: 400,
      utilization: 0.5,
      samples: 10,
      exceeded: [],
    };
    using shedder = new LoadShedder({ monitor: { snapshot: () => sample }, maxLagMs: 100 });
    const decision = await withTimeout(100, () => shedder.check(), { name: 'admit' });
    expect(decision.shed).toBe(true);
    expect(await counted('loopsafe.sheds')).toEqual([{ attributes: { 'loopsafe.reason': 'lag' }, value: 1 }]);
    expect(span('admit').events.map((event) => event.name)).toEqual(['loopsafe.shed']);
  });
});

describe('event-loop metrics', () => {
  it("with a monitor: each window's worst lag in loopsafe.event_loop.lag, its utilisation as a gauge", async () => {
    instrumentation?.dispose();
    const clock = createManualClock();
    using monitor = monitorEventLoop({ intervalMs: 100, clock });
    instrumentation = instrument({ tracerProvider, meterProvider, monitor });
    expect(await metric('loopsafe.event_loop.lag')).toBeUndefined(); // no window closed yet
    await clock.advance(100);
    const lag = (await metric('loopsafe.event_loop.lag')) as HistogramMetricData | undefined;
    expect(lag?.dataPointType).toBe(DataPointType.HISTOGRAM);
    expect(lag?.descriptor.unit).toBe('ms');
    expect(lag?.dataPoints[0]?.value.count).toBe(1);
    expect(lag?.dataPoints[0]?.value.sum).toBe(monitor.snapshot().maxLagMs);
    // The same window is not recorded twice.
    const again = (await metric('loopsafe.event_loop.lag')) as HistogramMetricData | undefined;
    expect(again?.dataPoints[0]?.value.count).toBe(1);
    const utilization = await metric('loopsafe.event_loop.utilization');
    expect(utilization?.dataPoints[0]?.value).toBe(monitor.snapshot().utilization);
  });
});

describe('a broken tracer or exporter costs spans, never the scope or the process', () => {
  it('startSpan and span.end throwing: the scopes settle as they would, nothing is raised', async () => {
    instrumentation?.dispose();
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown): void => {
      uncaught.push(error);
    };
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', onUncaught);
    const broken = new Error('exporter down');
    let startSpans = 0;
    const realTracer = tracerProvider.getTracer('broken');
    const brokenProvider = {
      getTracer: () => ({
        ...realTracer,
        startSpan: (...args: Parameters<typeof realTracer.startSpan>) => {
          startSpans++;
          if (startSpans === 1) throw broken;
          const made = realTracer.startSpan(...args);
          return Object.assign(Object.create(made) as typeof made, {
            end: () => {
              throw broken;
            },
          });
        },
      }),
    };
    try {
      instrumentation = instrument({ tracerProvider: brokenProvider, meterProvider });
      await expect(withTimeout(100, () => 'first', { name: 'a' })).resolves.toBe('first');
      await expect(withTimeout(100, () => 'second', { name: 'b' })).resolves.toBe('second');
      await flush();
      expect(startSpans).toBe(2);
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      for (const listener of listeners) process.on('uncaughtException', listener);
    }
  });
});

describe('leaves nothing behind', () => {
  it('a settled scope is not kept alive by its span bookkeeping (heap, after GC)', async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(gc, 'run with --expose-gc').toBeTypeOf('function');
    const contexts: WeakRef<object>[] = [];
    const none = (): void => undefined;
    const handlers = {
      start: (message: object) => contexts.push(new WeakRef(message)),
      end: none,
      asyncStart: none,
      asyncEnd: none,
      error: none,
    };
    scopeChannels.subscribe(handlers);
    try {
      const clock = createManualClock();
      const runs = [];
      for (let i = 0; i < 100; i++) {
        const kind = i % 3;
        runs.push(
          observe(
            withTimeout(10, () => (kind === 0 ? 'ok' : kind === 1 ? never() : Promise.reject(new Error('failed'))), {
              name: `scope ${String(i)}`,
              clock,
            }),
          ),
        );
      }
      await clock.advance(10);
      expect(runs.every((run) => run.outcome.status !== 'pending')).toBe(true);
    } finally {
      scopeChannels.unsubscribe(handlers);
    }
    expect(spans()).toHaveLength(100);
    await flush();
    gc?.();
    gc?.();
    // Still instrumenting: the spans of settled scopes were let go.
    expect(instrumentation?.active).toBe(true);
    expect(contexts.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
  });
});

describe('dispose, and off', () => {
  it('dispose stops new spans, ends the open ones, and leaves no subscriber on any channel', async () => {
    const clock = createManualClock();
    const pending = observe(withTimeout(1_000, () => never(), { name: 'open-at-dispose', clock }));
    expect(instrumentation?.active).toBe(true);
    instrumentation?.dispose();
    expect(instrumentation?.active).toBe(false);
    instrumentation?.dispose(); // idempotent
    expect(anySubscriber()).toBe(false);
    expect(span('open-at-dispose').attributes['loopsafe.outcome']).toBe('unfinished');
    await withTimeout(100, () => 'x', { name: 'after' });
    await clock.advance(1_000);
    expect(pending.outcome.status).toBe('rejected');
    expect(spans().map((s) => s.name)).toEqual(['open-at-dispose']);
  });

  it('`using` disposes it', async () => {
    instrumentation?.dispose();
    {
      using _scoped = instrument({ tracerProvider, meterProvider });
      expect(scopeChannels.hasSubscribers).toBe(true);
      await withTimeout(100, () => 'x', { name: 'inside' });
    }
    expect(anySubscriber()).toBe(false);
    await withTimeout(100, () => 'x', { name: 'outside' });
    expect(spans().map((s) => s.name)).toEqual(['inside']);
  });

  it('off: no span, and nothing subscribed (hasSubscribers false on every channel)', async () => {
    instrumentation?.dispose();
    instrumentation = undefined;
    expect(anySubscriber()).toBe(false);
    await app.startActiveSpan('request', async (request) => {
      await withTimeout(100, () => 'x', { name: 'quiet' });
      request.end();
    });
    expect(spans().map((s) => s.name)).toEqual(['request']);
  });
});

describe('bad input', () => {
  it.each([
    ['an unknown option', { tracer: {} }, /Unknown option `tracer`/],
    ['a tracerProvider without getTracer', { tracerProvider: {} }, /`tracerProvider`/],
    ['a meterProvider that is a number', { meterProvider: 5 }, /`meterProvider`.*got 5/],
    ['a monitor without snapshot', { monitor: { stop() {} } }, /`monitor`/],
    ['options that are not an object', 'yes', /instrument/],
  ])('%s: a TypeError, synchronously, nothing subscribed', (_label, options, message) => {
    instrumentation?.dispose();
    instrumentation = undefined;
    expect(() => instrument(options as never)).toThrow(TypeError);
    expect(() => instrument(options as never)).toThrow(message);
    expect(anySubscriber()).toBe(false);
  });
});
