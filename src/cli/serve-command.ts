// `canopy serve shard|router`: the long-running processes of a cluster.
import type { Command } from 'commander';

import { registerServeRouterCommand } from './serve-router-command';
import { registerServeShardCommand } from './serve-shard-command';

export function registerServeCommand(program: Command): void {
  const serve = program.command('serve').description('run a shard node or a router');
  registerServeShardCommand(serve);
  registerServeRouterCommand(serve);
}
