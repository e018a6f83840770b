// A one-method gRPC service for telemetry tests, with raw bytes as messages
// (no proto file): real grpc-js servers and clients on loopback, nothing Canopy.
import * as grpc from '@grpc/grpc-js';

export const ECHO_PATH = '/canopy.test.Echo/Echo';

const identity = (bytes: Buffer): Buffer => bytes;

const echoDefinition: grpc.ServiceDefinition = {
  Echo: {
    path: ECHO_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

/** Answers each call with what `handle` resolves to, or the status it throws (`{code, message}`). */
export async function startEchoServer(handle: (call: grpc.ServerUnaryCall<Buffer, Buffer>) => Promise<Buffer>): Promise<{ address: string; close: () => void }> {
  const server = new grpc.Server();
  server.addService(echoDefinition, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      handle(call).then(
        (reply) => callback(null, reply),
        (err: { code?: number; message?: string }) => callback({ code: err.code ?? grpc.status.UNKNOWN, details: err.message ?? String(err) }),
      );
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  return { address: `127.0.0.1:${port}`, close: () => server.forceShutdown() };
}

export class EchoClient {
  private readonly client: grpc.Client;

  constructor(address: string) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure());
  }

  /** One unary call with `metadata`, bounded by a 5 s deadline. */
  echo(request: Buffer, metadata: grpc.Metadata): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(ECHO_PATH, identity, identity, request, metadata, { deadline: Date.now() + 5_000 }, (err, reply) =>
        err ? reject(err) : resolve(reply!),
      );
    });
  }

  close(): void {
    this.client.close();
  }
}
