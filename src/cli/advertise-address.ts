// The address a shard node registers for routers to call, as given to
// --advertise. In Kubernetes it is `$(POD_IP):PORT`, which on an IPv6 pod
// expands to an unbracketed literal (fd00::5:8080) that no gRPC target
// parses; the port is always the last field, so the host can be bracketed.

import { isWildcardHost, splitHostPort } from './host-port';

/** `HOST:PORT`, with an IPv6 host put in brackets; throws naming the flag when it is not HOST:PORT. */
export function advertisedAddress(value: string): string {
  const address = value.trim();
  const [host, port] = splitHostPort(address);
  if (host === '' || !/^\d+$/.test(port) || Number(port) > 65_535) {
    throw new Error(`--advertise ${JSON.stringify(value)} must look like HOST:PORT, e.g. 10.0.0.7:7000 or [fd00::7]:7000`);
  }
  const bareIpv6 = host.includes(':') && !host.startsWith('[');
  return bareIpv6 ? `[${host}]:${port}` : address;
}

/** Whether routers could not call `address`: it names every interface (0.0.0.0 or ::). */
export function isWildcardAddress(address: string): boolean {
  return isWildcardHost(splitHostPort(address)[0]);
}
