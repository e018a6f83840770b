// HOST:PORT addresses as the serve commands take them: the port is the last
// field, so an IPv6 host may come bracketed ([::1]:7000) or, from $(POD_IP), bare.

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
