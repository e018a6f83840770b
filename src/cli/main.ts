// The `canopy` command. Each sub-command lives in its own file and registers
// itself on the program; this file only assembles them.
import { Command } from 'commander';

import { version } from '../../package.json';
import { registerBuildCommand } from './build-command';
import { registerInspectCommand } from './inspect-command';
import { registerPublishCommand } from './publish-command';
import { registerQueryCommand } from './query-command';
import { registerRollbackCommand } from './rollback-command';
import { registerServeCommand } from './serve-command';
import { registerStatusCommand } from './status-command';
import { registerUpCommand } from './up-command';

export function createProgram(): Command {
  const program = new Command('canopy')
    .description('Approximate nearest neighbour search over Annoy-compatible forests, served as a sharded gRPC cluster')
    .version(version)
    // Options after a sub-command's name are that sub-command's: `build --version v1` names a version.
    .enablePositionalOptions()
    .showHelpAfterError();
  // In the order a newcomer meets them: try it, build, publish, serve, ask.
  registerUpCommand(program);
  registerBuildCommand(program);
  registerInspectCommand(program);
  registerPublishCommand(program);
  registerStatusCommand(program);
  registerRollbackCommand(program);
  registerServeCommand(program);
  registerQueryCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await createProgram().parseAsync(argv);
}
