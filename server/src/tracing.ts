/**
 * OpenTelemetry for the reference server, on with `OTEL=1`: loopsafe's scopes
 * (the request scope `GET /api/fanout`, the gather `fanout`, the retry
 * `flaky-upstream` and its attempts, …) become spans through `loopsafe/otel`,
 * printed to stdout by the SDK's console exporter. Loaded only when tracing
 * is on: without `OTEL=1` the server never imports OpenTelemetry.
 */
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, ConsoleSpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { instrument } from 'loopsafe/otel';

/**
 * Registers a tracer provider that prints every finished span, the
 * AsyncLocalStorage context manager, and loopsafe's instrumentation.
 * Returns what stops it all (after the server has drained).
 */
export function startTracing(): { stop(): Promise<void> } {
  const contextManager = new AsyncLocalStorageContextManager();
  context.setGlobalContextManager(contextManager);
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(new ConsoleSpanExporter())],
  });
  trace.setGlobalTracerProvider(tracerProvider);
  const instrumentation = instrument({ tracerProvider });
  return {
    async stop() {
      instrumentation.dispose();
      await tracerProvider.shutdown();
      context.disable();
    },
  };
}
