'use strict';
// The canopy processes a load script starts (`node bin/canopy.js ...`), ended
// together however the script ends.
const { spawn } = require('node:child_process');
const path = require('node:path');

const CANOPY = path.join(__dirname, '..', 'bin', 'canopy.js');

class CanopyProcesses {
  constructor() {
    this.children = [];
  }

  /** Starts `node [nodeFlags] bin/canopy.js args --log-level warn`: stdout dropped, stderr shown; `env` replaces the environment. */
  start(args, { nodeFlags = [], env } = {}) {
    const child = spawn(process.execPath, [...nodeFlags, CANOPY, ...args, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'], env });
    this.children.push(child);
    return child;
  }

  /** SIGKILL to every one still running. */
  killAll() {
    for (const child of this.children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    this.children.length = 0;
  }

  /** SIGTERM to each (a graceful stop: a --cpu-prof profile gets written), resolving once all have exited. */
  async stopAll() {
    await Promise.all(this.children.map((child) => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.on('exit', resolve);
      child.kill('SIGTERM');
    })));
    this.children.length = 0;
  }
}

/** Runs a load script's `main`; on Ctrl-C or SIGTERM, or when `main` fails, kills `processes` first. */
function runScript(main, processes) {
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      processes.killAll();
      process.exit(130);
    });
  }
  main().catch((err) => {
    processes.killAll();
    process.stderr.write(`${err.stack || err}\n`);
    process.exitCode = 1;
  });
}

module.exports = { CanopyProcesses, runScript };
