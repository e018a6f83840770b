// One long-lived BatchSearchStream to one replica, carrying many BatchSearch
// calls, each matched to its reply by id. Opened on first use and again after
// it breaks; when it breaks, every call waiting on it fails as UNAVAILABLE
// (retryable), so the caller can try another replica.
import * as grpc from '@grpc/grpc-js';

import { CanopyError } from '../wire/canopy-error';
import type { BatchSearchEnvelope, BatchSearchReply, BatchSearchRequest, BatchSearchResponse } from '../wire/contract';
import type { TraceCarrier } from '../telemetry/grpc-context';

interface Waiting {
  resolve(response: BatchSearchResponse): void;
  reject(err: CanopyError): void;
  readonly timer: NodeJS.Timeout;
}

type DuplexMethod = (metadata: grpc.Metadata, options: grpc.CallOptions) => grpc.ClientDuplexStream<BatchSearchEnvelope, BatchSearchReply>;

export interface StreamCall {
  readonly promise: Promise<BatchSearchResponse>;
  /** Stops waiting: the promise fails as CANCELLED and the reply, if it comes, is dropped. */
  cancel(): void;
}

export class ReplicaStream {
  private stream: grpc.ClientDuplexStream<BatchSearchEnvelope, BatchSearchReply> | undefined;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly client: grpc.Client,
    private readonly address: string,
  ) {}

  /**
   * Sends `batch`; settles with its reply, or DEADLINE_EXCEEDED at `deadlineMs`
   * (epoch ms). `traceContext` (the caller's span, W3C) rides in the message.
   */
  send(batch: BatchSearchRequest, deadlineMs: number, traceContext?: TraceCarrier): StreamCall {
    const id = this.nextId++;
    const promise = new Promise<BatchSearchResponse>((resolve, reject) => {
      if (this.closed) {
        reject(CanopyError.unavailable(`stream to ${this.address} is closed`));
        return;
      }
      const timeoutMs = Math.max(1, Math.ceil(deadlineMs - Date.now()));
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(CanopyError.deadlineExceeded(`no reply from ${this.address} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      const envelope: BatchSearchEnvelope = { id, batch, timeoutMs };
      if (traceContext !== undefined) envelope.traceContext = traceContext;
      this.open().write(envelope);
    });
    return { promise, cancel: () => this.take(id)?.reject(new CanopyError(grpc.status.CANCELLED, 'cancelled by the caller')) };
  }

  close(): void {
    this.closed = true;
    this.stream?.cancel();
    this.failAll(CanopyError.unavailable(`stream to ${this.address} closed`));
  }

  private open(): grpc.ClientDuplexStream<BatchSearchEnvelope, BatchSearchReply> {
    if (this.stream !== undefined) return this.stream;
    const method = (this.client as unknown as Record<string, DuplexMethod>)['BatchSearchStream']!;
    const stream = method.call(this.client, new grpc.Metadata(), {});
    this.stream = stream;
    stream.on('data', (reply: BatchSearchReply) => this.settle(reply));
    const broken = (why: string, cause?: unknown): void => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      this.failAll(CanopyError.unavailable(`stream to ${this.address} ${why}`, cause));
    };
    stream.on('error', (err: grpc.ServiceError) => broken(`failed: ${err.details || err.message}`, err));
    stream.on('end', () => {
      broken('ended');
      stream.end(); // our half too, so the call completes
    });
    return stream;
  }

  private settle(reply: BatchSearchReply): void {
    const waiting = this.take(reply.id);
    if (waiting === undefined) return; // cancelled or timed out
    if (reply.code === grpc.status.OK && reply.batch !== null) waiting.resolve(reply.batch);
    else waiting.reject(new CanopyError(reply.code || grpc.status.INTERNAL, reply.message || 'empty reply'));
  }

  /** Removes a waiting call (and its timer) so that exactly one outcome settles it. */
  private take(id: number): Waiting | undefined {
    const waiting = this.waiting.get(id);
    if (waiting === undefined) return undefined;
    clearTimeout(waiting.timer);
    this.waiting.delete(id);
    return waiting;
  }

  private failAll(err: CanopyError): void {
    const all = [...this.waiting.values()];
    for (const w of all) clearTimeout(w.timer);
    this.waiting.clear();
    for (const w of all) w.reject(err);
  }
}
