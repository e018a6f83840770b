// Waits on the grpc.health.v1 service of a Canopy process: '' is SERVING once
// the process is up, 'canopy.v1.Search' once it can answer queries.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as HEALTH_PROTO } from 'grpc-health-check';

export const SEARCH_HEALTH_SERVICE = 'canopy.v1.Search';
const HEALTH_POLL_MS = 100;
const HEALTH_CALL_DEADLINE_MS = 500;

type HealthCheck = (
  req: { service: string },
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res?: { status: string }) => void,
) => void;

let healthClientConstructor: grpc.ServiceClientConstructor | undefined;

function healthClient(address: string): grpc.Client {
  if (healthClientConstructor === undefined) {
    const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(HEALTH_PROTO, { enums: String })) as unknown as {
      grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
    };
    healthClientConstructor = pkg.grpc.health.v1.Health;
  }
  // A connection of its own per check: with grpc-js's shared subchannel pool every
  // check would reuse one connection, so one worker of a --workers process would
  // answer them all and its siblings would go unprobed.
  return new healthClientConstructor(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
}

/** The status of `service` at `address` ('SERVING', 'NOT_SERVING', ...), or the gRPC error code name. */
export function healthStatus(address: string, service: string): Promise<string> {
  const client = healthClient(address);
  const check = (client as unknown as { check: HealthCheck }).check.bind(client);
  return new Promise((resolve) => {
    check({ service }, { deadline: Date.now() + HEALTH_CALL_DEADLINE_MS }, (err, res) => {
      client.close();
      resolve(err ? grpc.status[err.code]! : res!.status);
    });
  });
}

/**
 * Polls until `service` is SERVING. Rejects when `gaveUp()` returns a reason
 * (the process exited, say) or after `timeoutMs`.
 */
export async function waitForServing(
  address: string,
  service: string,
  opts: { timeoutMs: number; gaveUp: () => string | undefined },
): Promise<void> {
  const endMs = Date.now() + opts.timeoutMs;
  let last = '';
  while (Date.now() < endMs) {
    const reason = opts.gaveUp();
    if (reason !== undefined) throw new Error(reason);
    last = await healthStatus(address, service);
    if (last === 'SERVING') return;
    await new Promise((r) => setTimeout(r, HEALTH_POLL_MS));
  }
  throw new Error(`${address} did not report ${service || 'the server'} SERVING within ${opts.timeoutMs} ms (last: ${last})`);
}
