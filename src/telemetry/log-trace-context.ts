// Trace and span ids on log lines, so a log line found in a search leads to
// its trace and back. Spans are never made active (spans.ts), so a pino mixin
// reading "the active span" would find none: a line about a request spreads
// `traceFieldsOf(its span)` into its fields instead (see ServedCall.logFields).
import { isSpanContextValid, type Span } from '@opentelemetry/api';

export interface LogTraceFields {
  readonly trace_id?: string;
  readonly span_id?: string;
}

const NO_FIELDS: LogTraceFields = Object.freeze({});

/** `{trace_id, span_id}` (lower-case hex) of `span`; `{}` when it is unset or not part of a valid trace. */
export function traceFieldsOf(span: Span | undefined): LogTraceFields {
  const spanContext = span?.spanContext();
  if (spanContext === undefined || !isSpanContextValid(spanContext)) return NO_FIELDS;
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}
