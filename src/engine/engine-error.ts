/** Stable codes of engine errors; the shard node maps them to gRPC statuses (QUEUE_FULL -> RESOURCE_EXHAUSTED). */
export type EngineErrorCode = 'INVALID_ARGUMENT' | 'OUT_OF_RANGE' | 'BAD_STATE' | 'IO_ERROR' | 'BAD_FILE' | 'QUEUE_FULL';

/** Every error the engine raises (sync throw or rejected promise). The message names the bad input. */
export class EngineError extends Error {
  readonly code: EngineErrorCode;

  constructor(message: string, code: EngineErrorCode) {
    super(message);
    this.name = 'EngineError';
    this.code = code;
  }
}
