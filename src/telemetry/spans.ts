// Span plumbing shared by the gRPC helpers and the engine span: one switch that
// makes every helper a plain call when tracing is off, and one way to run a
// function inside an active span and end it with the right status.
import {
  type Attributes,
  type Context,
  context,
  INVALID_SPAN_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
} from '@opentelemetry/api';

/** Instrumentation scope of every Canopy span. */
export const TRACER_NAME = 'canopy';

/**
 * Looked up per span, not cached: after a shutdown the API hands out a new
 * proxy provider, and a cached tracer would keep the old one.
 */
export function canopyTracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

/** A span that records nothing, handed to `fn` while tracing is off. */
export const NOOP_SPAN: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

// Set iff startTelemetry registered a tracer provider. While false the helpers
// skip the API entirely (no context lookup, no span object, no closure), which
// is what "off costs nothing" rests on.
let tracingEnabled = false;

/** Called by startTelemetry / its shutdown only. */
export function setTracingEnabled(enabled: boolean): void {
  tracingEnabled = enabled;
}

export function isTracingEnabled(): boolean {
  return tracingEnabled;
}

/** What `fn` threw (possibly not an Error). */
export interface SpanFailure {
  readonly error: unknown;
}

export type SpanSettler = (span: Span, failure?: SpanFailure) => void;

/**
 * Runs `fn` inside a new span that is active (the parent of spans started in
 * `fn` and what gets propagated) and ends when `fn` settles. `settle` sets the
 * span's final attributes and status from the outcome (`failure` unset on success).
 */
export async function runInSpan<T>(
  name: string,
  kind: SpanKind,
  attributes: Attributes,
  parent: Context,
  fn: (span: Span) => Promise<T>,
  settle: SpanSettler = settleInternal,
): Promise<T> {
  const span = canopyTracer().startSpan(name, { kind, attributes }, parent);
  try {
    const result = await context.with(trace.setSpan(parent, span), fn, undefined, span);
    settle(span);
    return result;
  } catch (error) {
    settle(span, { error });
    throw error;
  } finally {
    span.end();
  }
}

/**
 * Runs `fn` in an internal span, child of the active one (the engine search
 * span, for instance). A throw marks the span as an error and is rethrown.
 */
export function withSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> {
  if (!tracingEnabled) return fn(NOOP_SPAN);
  return runInSpan(name, SpanKind.INTERNAL, attributes, context.active(), fn);
}

/**
 * Starts an INTERNAL span under an explicit parent, without making it active:
 * the serving hot path passes parents down by hand, because entering a context
 * (`context.with`) turns on AsyncLocalStorage's async hooks for the whole
 * process in Node 20, a cost every promise pays from then on. undefined while
 * tracing is off or without a parent; end it with `endSpan`.
 */
export function startChildSpan(name: string, attributes: Attributes, parent: Context | undefined): Span | undefined {
  if (!tracingEnabled || parent === undefined) return undefined;
  return canopyTracer().startSpan(name, { kind: SpanKind.INTERNAL, attributes }, parent);
}

/** Ends a span from `startChildSpan`, marking it failed when `failure` is set. */
export function endSpan(span: Span | undefined, failure?: SpanFailure): void {
  if (span === undefined) return;
  settleInternal(span, failure);
  span.end();
}

function settleInternal(span: Span, failure?: SpanFailure): void {
  if (failure !== undefined) markFailed(span, failure.error);
}

/** Records `error` on the span as an exception event and sets status ERROR with its message. */
export function markFailed(span: Span, error: unknown): void {
  const exception = error instanceof Error ? error : new Error(String(error));
  span.recordException(exception);
  span.setStatus({ code: SpanStatusCode.ERROR, message: exception.message });
}
