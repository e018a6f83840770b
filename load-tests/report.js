'use strict';
// The Markdown reports the load scripts write: a line saying when, on what
// machine and by which command the figures were measured, and the writing.
const { mkdirSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');

/** "<time> · <cpu> · <n> cores · node <v> · `<command>`" for the script at `scriptPath`, as this process was run. */
function machineLine(scriptPath) {
  const cpu = os.cpus();
  const command = `node ${path.relative(ROOT, scriptPath)} ${process.argv.slice(2).join(' ')}`.trim();
  return `${new Date().toISOString()} · ${cpu[0]?.model ?? 'cpu'} · ${cpu.length} cores · node ${process.version} · \`${command}\``;
}

/** Prints `report` and writes it to `file` (creating its folder). */
function writeReport(file, report) {
  process.stdout.write(report);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, report);
  process.stderr.write(`written to ${path.relative(ROOT, file)}\n`);
}

module.exports = { machineLine, writeReport };
