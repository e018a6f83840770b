// One place that turns the command line's etcd settings into a client.
import { Etcd3 } from 'etcd3';

import { readTlsMaterial, type TlsFiles } from '../wire/tls';

export const DEFAULT_ETCD_DIAL_TIMEOUT_MS = 3_000;

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
    ...(options.tls === undefined ? {} : { credentials: etcdCredentials(options.tls) }),
    ...(options.auth === undefined ? {} : { auth: { username: options.auth.user, password: options.auth.password } }),
  });
}

function etcdCredentials(tls: TlsFiles): { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer } {
  const { cert, key, ca } = readTlsMaterial(tls, '--etcd-tls');
  if (ca === undefined) throw new Error('--etcd-tls-ca is required for etcd over TLS: the CA that signs etcd\'s certificate');
  return { rootCertificate: ca, ...(key === undefined ? {} : { privateKey: key }), ...(cert === undefined ? {} : { certChain: cert }) };
}
