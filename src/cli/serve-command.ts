// `canopy serve shard|router|controller`: the long-running processes of a cluster.
import type { Command } from 'commander';

import { registerServeControllerCommand } from './serve-controller-command';
import { registerServeRouterCommand } from './serve-router-command';
import { registerServeShardCommand } from './serve-shard-command';

export function registerServeCommand(program: Command): void {
  const serve = program.command('serve').description('run a shard node, a router, or a version controller');
  registerServeShardCommand(serve);
  registerServeRouterCommand(serve);
  registerServeControllerCommand(serve);
}
