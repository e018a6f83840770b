// `canopy` starts cheaply: defining every command (all `--help` needs) loads no
// package but commander, and neither the addon. Each command imports its heavy
// modules (gRPC, etcd3, the AWS SDK, OpenTelemetry, pino, the addon) in its
// action, so a command pays only for what it runs. Runs the built dist/.
import { execFileSync } from 'node:child_process';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

const MAIN = path.resolve(__dirname, '../../dist/cli/main.js');

/** Runs `canopy <args> --help` for each args in one process; returns what it loaded from node_modules (and 'addon'). */
function loadedByHelp(commands: readonly (readonly string[])[]): string[] {
  const script = `
    const { main } = require(${JSON.stringify(MAIN)});
    const print = process.stdout.write.bind(process.stdout);
    process.stdout.write = () => true;
    (async () => {
      for (const args of ${JSON.stringify(commands)}) await main(['node', 'canopy', ...args, '--help']);
      const loaded = new Set();
      for (const file of Object.keys(require.cache)) {
        const pkg = /node_modules\\/((@[^/]+\\/)?[^/]+)/.exec(file);
        if (pkg) loaded.add(pkg[1]);
        if (file.endsWith('.node')) loaded.add('addon');
      }
      print(JSON.stringify([...loaded].sort()));
    })();`;
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  return JSON.parse(out) as string[];
}

/** Every command path of the program, from `canopy --help` down, read from the built program itself. */
function commandPaths(): string[][] {
  const script = `
    const { createProgram } = require(${JSON.stringify(MAIN)});
    const walk = (command, prefix) => command.commands.flatMap((c) => [[...prefix, c.name()], ...walk(c, [...prefix, c.name()])]);
    process.stdout.write(JSON.stringify(walk(createProgram(), [])));`;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as string[][];
}

describe('canopy start-up', () => {
  it('shows every help loading commander alone', () => {
    const commands = commandPaths();
    expect(commands).toContainEqual(['serve', 'shard']);
    expect(commands).toContainEqual(['publish']);
    expect(loadedByHelp([[], ...commands])).toEqual(['commander']);
  });
});
