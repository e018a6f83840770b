// Hosts a `canopy.v1.Search` implementation (a shard node's or a router's)
// with what every Canopy server offers beside it: grpc.health.v1 and server
// reflection (so grpcurl and ghz work without the proto file), message size
// caps, and a graceful close. Optionally a second, always-plaintext server
// carries grpc.health.v1 alone, for probes that cannot speak TLS (the kubelet's).
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import type { Context } from '@opentelemetry/api';
import * as protoLoader from '@grpc/proto-loader';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';

import { CanopyError } from './canopy-error';
import type { BatchSearchEnvelope, BatchSearchReply, BatchSearchRequest, BatchSearchResponse, SearchServiceHandlers } from './contract';
import { canopyPackageDefinition, SEARCH_SERVICE_NAME, searchServiceDefinition } from './contract';
import type { LoadGate } from './load-gate';
import { reflectionPackageDefinition } from './reflection-definition';
import { DEFAULT_MAX_CONCURRENT_STREAMS, DEFAULT_MAX_RECEIVE_MESSAGE_BYTES } from './server-limits';
import { type ServerTlsOptions, serverCredentials } from './tls';
import type { LogTraceFields } from '../telemetry/log-trace-context';
import { startServedCall } from '../telemetry/served-call';

export const DEFAULT_MAX_SEND_MESSAGE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_SHUTDOWN_GRACE_MS = 5_000;

export interface SearchServerOptions {
  /** HOST:PORT; port 0 picks a free port (see `start()`'s result). */
  readonly listen: string;
  readonly maxReceiveMessageBytes?: number;
  readonly maxSendMessageBytes?: number;
  /** Calls one client connection may have open at once; beyond it new calls are refused (REFUSED_STREAM). */
  readonly maxConcurrentStreams?: number;
  /** Listen with TLS (and mutual TLS when `requireClientCert`); omitted: plaintext. */
  readonly tls?: ServerTlsOptions;
  /** How long `close()` lets in-flight calls finish before cutting them. */
  readonly shutdownGraceMs?: number;
  /**
   * HOST:PORT of a plaintext server that serves grpc.health.v1 only (no
   * Search, no reflection), with the same statuses as the main server; it
   * exposes nothing else, so it is safe beside mutual TLS. Omitted: none.
   */
  readonly healthListen?: string;
}

export class SearchServer {
  private readonly listen: string;
  private readonly credentials: grpc.ServerCredentials;
  private readonly shutdownGraceMs: number;
  private readonly server: grpc.Server;
  /** Shared by both servers, so the health server reports exactly what the main one does. */
  private readonly health = new HealthImplementation({ '': 'NOT_SERVING', [SEARCH_SERVICE_NAME]: 'NOT_SERVING' });
  /** The plaintext health-only server, set iff `healthListen` was given. */
  private readonly healthOnly: { readonly server: grpc.Server; readonly listen: string } | undefined;

  constructor(handlers: SearchServiceHandlers, options: SearchServerOptions) {
    this.listen = options.listen;
    this.shutdownGraceMs = options.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
    // Read here, not at bind: a missing certificate stops the start before anything is loaded.
    this.credentials = serverCredentials(options.tls);
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': options.maxReceiveMessageBytes ?? DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
      'grpc.max_send_message_length': options.maxSendMessageBytes ?? DEFAULT_MAX_SEND_MESSAGE_BYTES,
      'grpc.max_concurrent_streams': options.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS,
      'grpc.enable_channelz': 0,
    });
    this.server.addService(searchServiceDefinition(), handlers);
    this.health.addToServer(this.server);
    new ReflectionService(reflectionPackageDefinition(reflectedPackages())).addToServer(this.server);
    if (options.healthListen !== undefined) {
      this.healthOnly = { server: new grpc.Server({ 'grpc.enable_channelz': 0 }), listen: options.healthListen };
      this.health.addToServer(this.healthOnly.server);
    }
  }

  /**
   * Binds and starts (the health-only server too, if any); resolves with
   * the main server's bound port. Health of the server as a
   * whole (service "") is SERVING from here until `close()`: a liveness probe
   * must not restart a process that is only waiting for a version to load.
   * Health of `canopy.v1.Search` stays NOT_SERVING until `setServing(true)`.
   */
  async start(): Promise<number> {
    const port = await bind(this.server, this.listen, this.credentials);
    if (this.healthOnly !== undefined) {
      try {
        await bind(this.healthOnly.server, this.healthOnly.listen, grpc.ServerCredentials.createInsecure());
      } catch (err) {
        this.server.forceShutdown();
        throw err;
      }
    }
    this.health.setStatus('', 'SERVING');
    return port;
  }

  /** Whether the Search service can answer (a shard: it holds a version; a router: it knows the index). */
  setServing(serving: boolean): void {
    this.health.setStatus(SEARCH_SERVICE_NAME, serving ? 'SERVING' : 'NOT_SERVING');
  }

  /**
   * Reports NOT_SERVING, lets in-flight calls finish for up to the grace
   * period, then cuts the rest. The health server stays up through the drain,
   * so probes see NOT_SERVING rather than a refused connection, and closes last.
   */
  async close(): Promise<void> {
    this.setServing(false);
    this.health.setStatus('', 'NOT_SERVING');
    await this.drain();
    // Health calls are instant, but a Watch stream never ends by itself: nothing is worth waiting for.
    this.healthOnly?.server.forceShutdown();
  }

  private drain(): Promise<void> {
    return new Promise((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, this.shutdownGraceMs);
      force.unref();
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }
}

function bind(server: grpc.Server, listen: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(listen, credentials, (err, port) => {
      if (err) reject(new Error(`cannot listen on ${listen}: ${err.message}`));
      else resolve(port);
    });
  });
}

/** Logs a failed call; `trace` holds the call's trace and span ids when it is traced. */
export type CallErrorLogger = (err: CanopyError, method: string, trace: LogTraceFields) => void;

/** How many queries a request carries, for canopy.inflight_queries (0: not a search). */
export type QueryCounter<Req> = (request: Req) => number;

const NO_TRACE: LogTraceFields = {};
/** rpc.method of one BatchSearchStream message in metrics, spans and logs. */
const STREAM_METHOD = 'BatchSearchStream';

/**
 * A grpc-js unary handler from an async function: whatever it throws is
 * normalised to a CanopyError and answered with that status; `onError` sees
 * it first (for logging). Each call is recorded (server span, duration,
 * queries in flight: see telemetry/served-call.ts); `fn` gets the parent for
 * its own spans, undefined while tracing is off. A call `gate` refuses is
 * answered RESOURCE_EXHAUSTED without running `fn`.
 */
export function unaryHandler<Req extends { readonly index: string }, Res>(
  fn: (request: Req, call: grpc.ServerUnaryCall<Req, Res>, parent: Context | undefined) => Promise<Res>,
  onError: CallErrorLogger,
  method: string,
  queriesOf: QueryCounter<Req> = () => 0,
  gate?: LoadGate,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const queries = queriesOf(call.request);
    const served = startServedCall(SEARCH_SERVICE_NAME, method, call.request.index, call.metadata, queries);
    const fail = (err: unknown): void => {
      const error = CanopyError.from(err);
      served?.end(error);
      onError(error, method, served?.logFields() ?? NO_TRACE);
      callback(error.toStatus());
    };
    // Refused before any work: an overloaded process must shed for less than it costs to serve.
    const refusal = gate?.admit(queries);
    if (refusal !== undefined) {
      fail(refusal);
      return;
    }
    fn(call.request, call, served?.parent).then(
      (response) => {
        gate?.release(queries);
        served?.end();
        callback(null, response);
      },
      (err: unknown) => {
        gate?.release(queries);
        fail(err);
      },
    );
  };
}

/** Queries in a Search or SearchByItem request. */
export const oneQuery = (): number => 1;
/** Queries in a BatchSearch request. */
export const batchQueries = (request: BatchSearchRequest): number => request.queries.length;

/**
 * The open BatchSearchStream calls of a server, so that a graceful close can
 * end them once their pending replies are written (a stream never ends by
 * itself, and a server waits for every call before it shuts down).
 */
export class StreamDrain {
  private readonly enders = new Set<() => void>();
  private draining = false;

  add(end: () => void): void {
    if (this.draining) end();
    else this.enders.add(end);
  }

  delete(end: () => void): void {
    this.enders.delete(end);
  }

  /** Ends every stream after its pending replies, and any stream opened from now on. */
  endAll(): void {
    this.draining = true;
    for (const end of this.enders) end();
    this.enders.clear();
  }
}

/**
 * The BatchSearchStream handler: runs each envelope's batch through `run`
 * (the same code as the unary BatchSearch) and writes a reply with the same
 * id, OK or with the error's status. Replies go out as they are ready. Each
 * message is recorded as a call of its own (method BatchSearchStream), its
 * span parented on the message's `trace_context`, and passes `gate` on its
 * own: a refused one gets a RESOURCE_EXHAUSTED reply without running `run`.
 */
export function batchStreamHandler(
  run: (batch: BatchSearchRequest, deadlineMs: number, parent: Context | undefined) => Promise<BatchSearchResponse>,
  onError: CallErrorLogger,
  drain: StreamDrain,
  gate?: LoadGate,
): grpc.handleBidiStreamingCall<BatchSearchEnvelope, BatchSearchReply> {
  return (call) => {
    let pending = 0;
    let ending = false;
    const endWhenIdle = (): void => {
      if (ending && pending === 0) {
        drain.delete(end);
        call.end();
      }
    };
    const end = (): void => {
      ending = true;
      endWhenIdle();
    };
    drain.add(end);
    call.on('data', (envelope: BatchSearchEnvelope) => {
      pending++;
      const deadlineMs = envelope.timeoutMs > 0 ? Date.now() + envelope.timeoutMs : Number.POSITIVE_INFINITY;
      const batch = envelope.batch ?? { index: '', queries: [], minShards: 0, version: '' };
      const queries = batch.queries.length;
      const served = startServedCall(SEARCH_SERVICE_NAME, STREAM_METHOD, batch.index, envelope.traceContext, queries);
      const refusal = gate?.admit(queries);
      const answer = refusal === undefined ? run(batch, deadlineMs, served?.parent) : Promise.reject(refusal);
      answer
        .finally(() => {
          if (refusal === undefined) gate?.release(queries);
        })
        .then(
          (response): BatchSearchReply => {
            served?.end();
            return { id: envelope.id, batch: response, code: grpc.status.OK, message: '' };
          },
          (err: unknown): BatchSearchReply => {
            const error = CanopyError.from(err);
            served?.end(error);
            onError(error, STREAM_METHOD, served?.logFields() ?? NO_TRACE);
            return { id: envelope.id, batch: null, code: error.code, message: error.message };
          },
        )
        .then((reply) => {
          pending--;
          if (!call.cancelled && !call.writableEnded) call.write(reply);
          endWhenIdle();
        });
    });
    call.on('end', end);
    // The caller went away: nothing is left to answer.
    call.on('error', () => drain.delete(end));
    call.on('cancelled', () => drain.delete(end));
  };
}

/**
 * What reflection lists: the Canopy service and grpc.health.v1, so
 * `grpcurl ... grpc.health.v1.Health/Check` works without a proto file.
 */
function reflectedPackages(): protoLoader.PackageDefinition {
  return { ...canopyPackageDefinition(), ...protoLoader.loadSync(healthProtoPath) };
}
