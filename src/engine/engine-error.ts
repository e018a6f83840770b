/** Stable codes of engine errors; the shard node maps them to gRPC statuses (QUEUE_FULL -> RESOURCE_EXHAUSTED). */
export type EngineErrorCode = 'INVALID_ARGUMENT' | 'OUT_OF_RANGE' | 'BAD_STATE' | 'IO_ERROR' | 'BAD_FILE' | 'QUEUE_FULL';

/** Every error the engine raises (sync throw or rejected promise). The message names the bad input. */
export class EngineError extends Error {
  readonly code: EngineErrorCode;

  constructor(message: string, code: EngineErrorCode) {
    // A refusal (QUEUE_FULL) is an expected answer, thousands a second under overload: its stack says
    // nothing, and capturing it (deep under grpc-js, from native code) cost a loaded shard's event loop
    // about 6% of its time.
    const stackTraceLimit = Error.stackTraceLimit;
    if (code === 'QUEUE_FULL') Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = stackTraceLimit;
    this.name = 'EngineError';
    this.code = code;
  }
}
