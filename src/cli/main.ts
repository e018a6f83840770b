// The `canopy` command. Each sub-command lives in its own file and registers
// itself (its flags and help) on the program, importing nothing heavy: gRPC,
// etcd3, the AWS SDK, OpenTelemetry, pino and the addon are imported inside
// the actions, so start-up and `--help` cost only commander (checked by
// test/integration/cli-start-up.test.ts). This file assembles them, and turns a problem
// with the arguments (commander's, or an action's `command.error`) into exit
// status 2 after the message and usage hint, as shells expect of a usage error.
import { Command, CommanderError } from 'commander';

import { version } from '../../package.json';
import { registerBuildCommand } from './build-command';
import { registerCodesCommand } from './codes-command';
import { ETCD_ENV, CLUSTER_ENV } from './etcd-flags';
import { registerInspectCommand } from './inspect-command';
import { registerItemCommands } from './item-commands';
import { registerPublishCommand } from './publish-command';
import { registerQueryCommand } from './query-command';
import { registerRollbackCommand } from './rollback-command';
import { registerServeCommand } from './serve-command';
import { registerStatusCommand } from './status-command';
import { TARGET_ENV } from './target-flags';
import { registerUpCommand } from './up-command';

export function createProgram(): Command {
  const program = new Command('canopy')
    .description('Approximate nearest neighbour search over Annoy-compatible forests, served as a sharded gRPC cluster')
    .version(version)
    // Options after a sub-command's name are that sub-command's: `build --version v1` names a version.
    .enablePositionalOptions()
    .showHelpAfterError()
    // Throw instead of exiting, so main() picks the status; sub-commands inherit this.
    .exitOverride()
    .addHelpText(
      'after',
      [
        '',
        'Environment (a flag given on the command line wins):',
        `  ${ETCD_ENV}     --etcd of status, publish, rollback, serve controller`,
        `  ${CLUSTER_ENV}  --cluster of every command that has one (default: default, as canopy up uses)`,
        `  ${TARGET_ENV}   --target of query, get-item, describe`,
      ].join('\n'),
    );
  // In the order a newcomer meets them: try it, build, publish, serve, ask.
  registerUpCommand(program);
  registerBuildCommand(program);
  registerCodesCommand(program);
  registerInspectCommand(program);
  registerPublishCommand(program);
  registerStatusCommand(program);
  registerRollbackCommand(program);
  registerServeCommand(program);
  registerQueryCommand(program);
  registerItemCommands(program);
  return program;
}

/** Exit status of a usage error: bad flags or arguments, found before any work. */
export const USAGE_EXIT_CODE = 2;

export async function main(argv: string[]): Promise<void> {
  try {
    await createProgram().parseAsync(argv);
  } catch (err) {
    // Commander has printed the message (or the help, or the version) already.
    if (!(err instanceof CommanderError)) throw err;
    process.exitCode = err.exitCode === 0 ? 0 : USAGE_EXIT_CODE;
  }
}
