// The --etcd and --cluster flags shared by every command that talks to the
// registry, and a helper that opens and always closes the client.
import type { Command } from 'commander';
import { type Etcd3, GRPCGenericError } from 'etcd3';

import { createEtcdClient } from '../registry/etcd-client';
import { ClusterKeys } from '../registry/keys';
import { addEtcdSecurityFlags, type EtcdSecurityFlags, etcdSecurityFromFlags } from './tls-flags';

export interface EtcdFlags extends EtcdSecurityFlags {
  readonly etcd: string;
  readonly cluster: string;
}

export function addEtcdFlags(command: Command): Command {
  return addEtcdSecurityFlags(command)
    .requiredOption('--etcd <urls>', 'etcd client URLs, comma-separated (e.g. http://127.0.0.1:2379)')
    .option('--cluster <name>', 'cluster name: the prefix /canopy/<name>/ in etcd', 'default');
}

export async function withRegistry<T>(flags: EtcdFlags, work: (etcd: Etcd3, keys: ClusterKeys) => Promise<T>): Promise<T> {
  const keys = new ClusterKeys(flags.cluster);
  const etcd = createEtcdClient({ endpoints: flags.etcd, ...etcdSecurityFromFlags(flags) });
  try {
    return await work(etcd, keys);
  } catch (err) {
    if (err instanceof GRPCGenericError) {
      throw new Error(`etcd at ${flags.etcd} did not answer (${err.message.split('.')[0]})`, { cause: err });
    }
    throw err;
  } finally {
    etcd.close();
  }
}
