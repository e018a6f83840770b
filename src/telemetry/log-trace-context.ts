// Puts the active span's ids on every log line, so a log line found in a
// search leads to its trace and back. Use as the `mixin` of the process's pino
// logger (src/cli/serve-process.ts creates it): `pino({ mixin: logTraceContext })`.
// The serving hot path never activates its spans (see startChildSpan in
// spans.ts), so a log line about one request adds `traceFieldsOf(its span)`.
import { isSpanContextValid, type Span, trace } from '@opentelemetry/api';

export interface LogTraceFields {
  readonly trace_id?: string;
  readonly span_id?: string;
}

/**
 * `{trace_id, span_id}` (lower-case hex) of the active span; `{}` outside a
 * recorded span or with tracing off. A fresh object each time: pino merges the
 * log line's fields into what its mixin returns.
 */
export function logTraceContext(): LogTraceFields {
  return traceFieldsOf(trace.getActiveSpan());
}

/** `{trace_id, span_id}` of `span`; `{}` when it is unset or not part of a valid trace. */
export function traceFieldsOf(span: Span | undefined): LogTraceFields {
  const spanContext = span?.spanContext();
  if (spanContext === undefined || !isSpanContextValid(spanContext)) return {};
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}
