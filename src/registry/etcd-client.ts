// One place that turns the command line's etcd settings into a client.
import { Etcd3 } from 'etcd3';

export const DEFAULT_ETCD_DIAL_TIMEOUT_MS = 3_000;

export interface EtcdClientOptions {
  /** Comma-separated or listed client URLs, e.g. http://127.0.0.1:2379. */
  readonly endpoints: string | readonly string[];
  readonly dialTimeoutMs?: number;
}

export function createEtcdClient(options: EtcdClientOptions): Etcd3 {
  const hosts = (typeof options.endpoints === 'string' ? options.endpoints.split(',') : [...options.endpoints])
    .map((h) => h.trim())
    .filter((h) => h.length > 0);
  if (hosts.length === 0) throw new Error('no etcd endpoint given (--etcd URL[,URL...])');
  return new Etcd3({ hosts, dialTimeout: options.dialTimeoutMs ?? DEFAULT_ETCD_DIAL_TIMEOUT_MS });
}
