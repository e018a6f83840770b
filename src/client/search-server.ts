// Hosts a `canopy.v1.Search` implementation (a shard node's or a router's)
// with what every Canopy server offers beside it: grpc.health.v1 and server
// reflection (so grpcurl and ghz work without the proto file), message size
// caps, and a graceful close.
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';

import { CanopyError } from './canopy-error';
import type { SearchServiceHandlers } from './contract';
import { canopyPackageDefinition, SEARCH_SERVICE_NAME, searchServiceDefinition } from './contract';

export const DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_SEND_MESSAGE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_SHUTDOWN_GRACE_MS = 5_000;

export interface SearchServerOptions {
  /** HOST:PORT; port 0 picks a free port (see `start()`'s result). */
  readonly listen: string;
  readonly maxReceiveMessageBytes?: number;
  readonly maxSendMessageBytes?: number;
  /** How long `close()` lets in-flight calls finish before cutting them. */
  readonly shutdownGraceMs?: number;
}

export class SearchServer {
  private readonly listen: string;
  private readonly shutdownGraceMs: number;
  private readonly server: grpc.Server;
  private readonly health = new HealthImplementation({ '': 'NOT_SERVING', [SEARCH_SERVICE_NAME]: 'NOT_SERVING' });

  constructor(handlers: SearchServiceHandlers, options: SearchServerOptions) {
    this.listen = options.listen;
    this.shutdownGraceMs = options.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': options.maxReceiveMessageBytes ?? DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
      'grpc.max_send_message_length': options.maxSendMessageBytes ?? DEFAULT_MAX_SEND_MESSAGE_BYTES,
      'grpc.enable_channelz': 0,
    });
    this.server.addService(searchServiceDefinition(), handlers);
    this.health.addToServer(this.server);
    new ReflectionService(canopyPackageDefinition()).addToServer(this.server);
  }

  /** Binds and starts; resolves with the bound port. Health stays NOT_SERVING until `setServing(true)`. */
  start(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(this.listen, grpc.ServerCredentials.createInsecure(), (err, port) => {
        if (err) reject(new Error(`cannot listen on ${this.listen}: ${err.message}`));
        else resolve(port);
      });
    });
  }

  setServing(serving: boolean): void {
    const status = serving ? 'SERVING' : 'NOT_SERVING';
    this.health.setStatus('', status);
    this.health.setStatus(SEARCH_SERVICE_NAME, status);
  }

  /** Reports NOT_SERVING, lets in-flight calls finish for up to the grace period, then cuts the rest. */
  close(): Promise<void> {
    this.setServing(false);
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

/**
 * A grpc-js unary handler from an async function: whatever it throws is
 * normalised to a CanopyError and answered with that status; `onError` sees
 * it first (for logging).
 */
export function unaryHandler<Req, Res>(
  fn: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>,
  onError: (err: CanopyError, method: string) => void,
  method: string,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    fn(call.request, call).then(
      (response) => callback(null, response),
      (err: unknown) => {
        const error = CanopyError.from(err);
        onError(error, method);
        callback(error.toStatus());
      },
    );
  };
}
