/**
 * OpenTelemetry for the reference server, on with `OTEL=1`: loopsafe's scopes
 * (the request scope `GET /api/fanout`, the gather `fanout`, the retry
 * `flaky-upstream` and its attempts, …) become spans through `loopsafe/otel`.
 * Each finished span is printed to stderr as one JSON line (`{"span": …}`):
 * stdout carries the server's own JSON logs, which a multi-line console dump
 * would break. Loaded only when tracing is on: without `OTEL=1` the server
 * never imports OpenTelemetry.
 */
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { ExportResultCode, hrTimeToMilliseconds, type ExportResult } from '@opentelemetry/core';
import {
  BasicTracerProvider,
  SimpleSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { instrument } from 'loopsafe/otel';

/** A console exporter that writes one JSON line per span. */
class JsonLineSpanExporter implements SpanExporter {
  constructor(private readonly write: (line: string) => void) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    for (const span of spans) {
      const { traceId, spanId } = span.spanContext();
      this.write(
        `${JSON.stringify({
          span: span.name,
          traceId,
          spanId,
          parentSpanId: span.parentSpanContext?.spanId,
          durationMs: Math.round(hrTimeToMilliseconds(span.duration) * 1000) / 1000,
          status: span.status,
          attributes: span.attributes,
          events: span.events.map((event) => ({ name: event.name, attributes: event.attributes })),
        })}\n`,
      );
    }
    done({ code: ExportResultCode.SUCCESS });
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Registers a tracer provider that prints every finished span, the
 * AsyncLocalStorage context manager, and loopsafe's instrumentation.
 * Returns what stops it all (after the server has drained).
 */
export function startTracing(): { stop(): Promise<void> } {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager());
  const exporter = new JsonLineSpanExporter((line) => process.stderr.write(line));
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
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
