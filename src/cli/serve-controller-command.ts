// `canopy serve controller`: only the version controller, for clusters that
// run routers with --no-controller. Any number may run beside the routers'
// controllers: the flip is guarded on `target`, so they can only agree.
// etcd3 and pino are loaded by the action, so `--help` loads neither.
import type { Command } from 'commander';

import { ClusterView } from '../registry/cluster-view';
import { ClusterKeys } from '../registry/keys';
import { VersionController } from '../registry/version-controller';
import { addEtcdFlags, type EtcdFlags } from './etcd-flags';
import { positiveInt } from './integer-flags';
import { etcdSecurityFromFlags } from './tls-flags';
import { checkArguments } from './usage-error';

interface ControllerFlags extends EtcdFlags {
  readonly minReady?: number;
  readonly logLevel?: string;
}

export function registerServeControllerCommand(serve: Command): void {
  addEtcdFlags(
    serve
      .command('controller')
      .description('flip each index\'s active version to its target once every shard has enough ready replicas')
      .option('--min-ready <n>', 'ready replicas every shard needs before a new version becomes active (default 1)', positiveInt('--min-ready'))
      .option('--log-level <level>', 'pino log level (default: $CANOPY_LOG_LEVEL, else info)'),
  ).action(async (flags: ControllerFlags, self: Command) => {
    const [{ createEtcdClient }, { createLogger, stopOnSignals }] = await Promise.all([import('../registry/etcd-client.js'), import('./serve-process.js')]);
    const log = await checkArguments(self, () => createLogger('controller', flags.logLevel));
    const etcd = createEtcdClient({ endpoints: flags.etcd, ...etcdSecurityFromFlags(flags) });
    const keys = new ClusterKeys(flags.cluster);
    const view = new ClusterView({ etcd, keys });
    const controller = new VersionController({
      etcd,
      keys,
      view,
      minReadyReplicas: flags.minReady,
      onFlip: (index, version) => log.info({ index, version }, 'flipped active version'),
      onError: (err) => log.warn({ err: err.message }, 'version flip failed; will retry on the next change'),
    });
    controller.start();
    stopOnSignals(async () => {
      controller.stop();
      await view.close();
      etcd.close();
    }, log);
    await view.start();
    log.info({ cluster: flags.cluster }, 'controller watching');
  });
}
