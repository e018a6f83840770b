// One place that turns the command line's etcd settings into a client, with the
// fault handling that decides how fast a process comes back after an etcd
// outage (see docs/design.md, "After an etcd outage").
import { circuitBreaker, ConsecutiveBreaker, ExponentialBackoff, handleWhen, retry } from 'cockatiel';
import { Etcd3, isRecoverableError } from 'etcd3';

import { readTlsMaterial, type TlsFiles } from '../wire/tls';

export const DEFAULT_ETCD_DIAL_TIMEOUT_MS = 3_000;
/**
 * After three calls in a row fail, a host is skipped this long before one call probes it again. etcd3's
 * default is 5 s, which alone delayed re-registering that long after etcd came back.
 */
export const ETCD_HOST_PROBE_AFTER_MS = 500;
/** Watch streams redial after a delay doubling from the first to the last (etcd3's default caps at 30 s). */
export const ETCD_WATCH_BACKOFF_FIRST_MS = 100;
export const ETCD_WATCH_BACKOFF_MAX_MS = 1_000;
/**
 * While a call or watch is open, ping etcd this often and give up on the connection when a ping is
 * not answered within the timeout: an etcd that hangs, or a network that drops packets, sends no
 * reset, and a watch would wait on it forever. etcd refuses pings more often than every 5 s
 * (--grpc-keepalive-min-time).
 */
export const ETCD_KEEPALIVE_TIME_MS = 10_000;
export const ETCD_KEEPALIVE_TIMEOUT_MS = 5_000;
/** Each call is tried this many times (on the next host when there are several) before it fails. */
const ETCD_CALL_ATTEMPTS = 3;

export interface EtcdClientOptions {
  /** Comma-separated or listed client URLs, e.g. http://127.0.0.1:2379 (https:// with `tls`). */
  readonly endpoints: string | readonly string[];
  readonly dialTimeoutMs?: number;
  /** Talk TLS: `caFile` verifies etcd, `certFile`/`keyFile` is the client certificate etcd may require. */
  readonly tls?: TlsFiles;
  /** etcd user/password authentication (etcd's `auth enable`). */
  readonly auth?: { readonly user: string; readonly password: string };
}

export function createEtcdClient(options: EtcdClientOptions): Etcd3 {
  const hosts = (typeof options.endpoints === 'string' ? options.endpoints.split(',') : [...options.endpoints])
    .map((h) => h.trim())
    .filter((h) => h.length > 0);
  if (hosts.length === 0) throw new Error('no etcd endpoint given (--etcd URL[,URL...])');
  return new Etcd3({
    hosts,
    dialTimeout: options.dialTimeoutMs ?? DEFAULT_ETCD_DIAL_TIMEOUT_MS,
    grpcOptions: { 'grpc.keepalive_time_ms': ETCD_KEEPALIVE_TIME_MS, 'grpc.keepalive_timeout_ms': ETCD_KEEPALIVE_TIMEOUT_MS },
    faultHandling: boundedFaultHandling(),
    ...(options.tls === undefined ? {} : { credentials: etcdCredentials(options.tls) }),
    ...(options.auth === undefined ? {} : { auth: { username: options.auth.user, password: options.auth.password } }),
  });
}

/** etcd3's policies with every wait bounded to about a second, so watches and leases resume soon after etcd does. */
function boundedFaultHandling() {
  const recoverable = handleWhen(isRecoverableError);
  return {
    host: () => circuitBreaker(recoverable, { halfOpenAfter: ETCD_HOST_PROBE_AFTER_MS, breaker: new ConsecutiveBreaker(3) }),
    global: retry(recoverable, { maxAttempts: ETCD_CALL_ATTEMPTS }),
    // etcd3 types this as a backoff already started (and calls next() on it): give it the first step.
    watchBackoff: new ExponentialBackoff({ initialDelay: ETCD_WATCH_BACKOFF_FIRST_MS, maxDelay: ETCD_WATCH_BACKOFF_MAX_MS }).next(),
  };
}

function etcdCredentials(tls: TlsFiles): { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer } {
  const { cert, key, ca } = readTlsMaterial(tls, '--etcd-tls');
  if (ca === undefined) throw new Error('--etcd-tls-ca is required for etcd over TLS: the CA that signs etcd\'s certificate');
  return { rootCertificate: ca, ...(key === undefined ? {} : { privateKey: key }), ...(cert === undefined ? {} : { certChain: cert }) };
}
