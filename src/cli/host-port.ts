// HOST:PORT addresses as the serve commands take them: the port is the last
// field, so an IPv6 host may come bracketed ([::1]:7000) or, from $(POD_IP), bare.
import { InvalidArgumentError } from 'commander';

/** [host, port] of `address`, split at its last colon; host '' when there is none. */
export function splitHostPort(address: string): [string, string] {
  const colon = address.lastIndexOf(':');
  return colon < 0 ? ['', address] : [address.slice(0, colon), address.slice(colon + 1)];
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '[::]', '::', '']);

/** Whether `host` names every interface (0.0.0.0, ::, or nothing). */
export function isWildcardHost(host: string): boolean {
  return WILDCARD_HOSTS.has(host);
}

/**
 * Commander's parser of a listen flag: HOST:PORT with a port from 0 to 65535, else a usage error
 * naming the flag (the host is the server's to resolve).
 */
export function listenAddress(flag: string): (value: string) => string {
  return (value) => {
    const [, port] = splitHostPort(value);
    if (!value.includes(':') || !/^\d+$/.test(port)) throw new InvalidArgumentError(`${flag} ${JSON.stringify(value)} must look like HOST:PORT, e.g. 0.0.0.0:7000`);
    if (Number(port) > 65_535) throw new InvalidArgumentError(`${flag} ${JSON.stringify(value)}: port ${port} is out of range (0-65535)`);
    return value;
  };
}
