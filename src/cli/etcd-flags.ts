// The --etcd and --cluster flags shared by every command that talks to the
// registry ($CANOPY_ETCD, $CANOPY_CLUSTER), and a helper that opens and always
// closes the client. etcd3 is loaded by that helper, when a command runs, so
// that `--help` and the commands that never dial etcd do not pay for it.
import { type Command, Option } from 'commander';
import type { Etcd3 } from 'etcd3';

import { ClusterKeys, DEFAULT_CLUSTER_NAME } from '../registry/keys';
import { addEtcdSecurityFlags, type EtcdSecurityFlags, etcdSecurityFromFlags } from './tls-flags';
import { checkArguments } from './usage-error';

export interface EtcdFlags extends EtcdSecurityFlags {
  readonly etcd: string;
  readonly cluster: string;
}

export const ETCD_ENV = 'CANOPY_ETCD';
export const CLUSTER_ENV = 'CANOPY_CLUSTER';

export function addEtcdFlags(command: Command): Command {
  return (
    addEtcdSecurityFlags(command)
      .addOption(new Option('--etcd <urls>', 'etcd client URLs, comma-separated (e.g. http://127.0.0.1:2379)').env(ETCD_ENV).makeOptionMandatory())
      .addOption(clusterOption('cluster name: the prefix /canopy/<name>/ in etcd'))
      // --etcd-user without its password is a usage error, found before etcd is dialled.
      .hook('preAction', async (self) => void (await checkArguments(self, () => etcdSecurityFromFlags(self.opts<EtcdSecurityFlags>()))))
  );
}

/** --cluster, from $CANOPY_CLUSTER when not given, else the name `canopy up` uses too. */
export function clusterOption(description: string): Option {
  return new Option('--cluster <name>', description).env(CLUSTER_ENV).default(DEFAULT_CLUSTER_NAME);
}

export async function withRegistry<T>(flags: EtcdFlags, work: (etcd: Etcd3, keys: ClusterKeys) => Promise<T>): Promise<T> {
  const [{ GRPCGenericError }, { createEtcdClient }] = await Promise.all([import('etcd3'), import('../registry/etcd-client.js')]);
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
