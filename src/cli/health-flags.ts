// --health-listen of `canopy serve shard|router`: a plaintext server that
// carries grpc.health.v1 alone, for probes that cannot speak TLS (the
// kubelet's native gRPC probe) when the serving port requires it.
import type { Command } from 'commander';

import { isWildcardHost, listenAddress, splitHostPort } from './host-port';

export interface HealthListenFlags {
  readonly listen: string;
  readonly healthListen?: string;
}

export function addHealthListenFlag(command: Command): Command {
  return command.option(
    '--health-listen <host:port>',
    'also serve grpc.health.v1, and nothing else, in plaintext on this address (for probes that cannot speak TLS)',
    listenAddress('--health-listen'),
  );
}

/** --health-listen, refused when it names the --listen address (one port cannot serve both). */
export function healthListenFromFlags(flags: HealthListenFlags): string | undefined {
  const health = flags.healthListen;
  if (health === undefined) return undefined;
  if (sameAddress(health, flags.listen)) {
    throw new Error(`--health-listen ${health} must differ from --listen ${flags.listen}: the health server needs a port of its own`);
  }
  return health;
}

/** Whether two HOST:PORT listen addresses would take the same socket (a wildcard host overlaps every host; port 0 is always a fresh port). */
function sameAddress(a: string, b: string): boolean {
  const [hostA, portA] = splitHostPort(a);
  const [hostB, portB] = splitHostPort(b);
  if (portA !== portB || portA === '0') return false;
  return hostA === hostB || isWildcardHost(hostA) || isWildcardHost(hostB);
}
