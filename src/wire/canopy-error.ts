// One error type for every Canopy RPC failure, on both sides of the wire: it
// carries the gRPC status code to answer with, the cause, and whether trying
// again (elsewhere) may succeed.
import * as grpc from '@grpc/grpc-js';

const RETRYABLE_CODES: ReadonlySet<grpc.status> = new Set([
  grpc.status.UNAVAILABLE,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.ABORTED,
]);

/** Engine error codes (`EngineError.code`) and the status each one becomes. */
const ENGINE_CODE_STATUS: Readonly<Record<string, grpc.status>> = {
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  OUT_OF_RANGE: grpc.status.OUT_OF_RANGE,
  BAD_STATE: grpc.status.FAILED_PRECONDITION,
  IO_ERROR: grpc.status.INTERNAL,
  BAD_FILE: grpc.status.INTERNAL,
  QUEUE_FULL: grpc.status.RESOURCE_EXHAUSTED,
};

/** Longest status details sent (UTF-8, percent-encoded, stays well under 16 KiB of trailer). */
export const MAX_STATUS_DETAILS_CHARS = 1_000;

export interface CanopyErrorOptions {
  readonly cause?: unknown;
  /** Defaults to true for UNAVAILABLE, RESOURCE_EXHAUSTED and ABORTED. */
  readonly retryable?: boolean;
}

export class CanopyError extends Error {
  override readonly name = 'CanopyError';
  readonly retryable: boolean;

  constructor(
    readonly code: grpc.status,
    message: string,
    options: CanopyErrorOptions = {},
  ) {
    // A refusal under overload is an expected answer, not a fault: no stack (see EngineError's QUEUE_FULL).
    const stackTraceLimit = Error.stackTraceLimit;
    if (code === grpc.status.RESOURCE_EXHAUSTED) Error.stackTraceLimit = 0;
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    Error.stackTraceLimit = stackTraceLimit;
    this.retryable = options.retryable ?? RETRYABLE_CODES.has(code);
  }

  static invalidArgument(message: string): CanopyError {
    return new CanopyError(grpc.status.INVALID_ARGUMENT, message);
  }

  static notFound(message: string): CanopyError {
    return new CanopyError(grpc.status.NOT_FOUND, message);
  }

  static unavailable(message: string, cause?: unknown): CanopyError {
    return new CanopyError(grpc.status.UNAVAILABLE, message, { cause });
  }

  static deadlineExceeded(message: string): CanopyError {
    return new CanopyError(grpc.status.DEADLINE_EXCEEDED, message);
  }

  /**
   * Normalises anything caught: a CanopyError stays as it is, a grpc-js
   * ServiceError keeps its status, an engine error maps by its `code`, and
   * anything else is INTERNAL.
   */
  static from(err: unknown): CanopyError {
    if (err instanceof CanopyError) return err;
    if (isServiceError(err)) return new CanopyError(err.code, err.details || err.message, { cause: err });
    const engineCode = (err as { code?: unknown } | null)?.code;
    if (err instanceof Error && typeof engineCode === 'string' && engineCode in ENGINE_CODE_STATUS) {
      return new CanopyError(ENGINE_CODE_STATUS[engineCode]!, err.message, { cause: err });
    }
    const message = err instanceof Error ? err.message : String(err);
    return new CanopyError(grpc.status.INTERNAL, `internal error: ${message}`, { cause: err });
  }

  /**
   * What a grpc-js handler callback takes. Details travel in a trailer and
   * messages may quote the request (an index name of 100 kB): past HTTP/2's
   * header limits the trailer is never sent and the caller waits out its
   * deadline, so details are cut to a bounded length.
   */
  toStatus(): Partial<grpc.StatusObject> {
    const details =
      this.message.length > MAX_STATUS_DETAILS_CHARS ? `${this.message.slice(0, MAX_STATUS_DETAILS_CHARS)}…` : this.message;
    return { code: this.code, details };
  }

  get codeName(): string {
    return grpc.status[this.code] ?? String(this.code);
  }
}

function isServiceError(err: unknown): err is grpc.ServiceError {
  return (
    err instanceof Error &&
    typeof (err as grpc.ServiceError).code === 'number' &&
    typeof (err as grpc.ServiceError).details === 'string' &&
    (err as grpc.ServiceError).metadata !== undefined
  );
}
