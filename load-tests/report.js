'use strict';
// The Markdown reports the load scripts write: a line saying when, on what
// machine and by which command the figures were measured, the median they
// report over rounds, and the writing.
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

/** The middle value of `xs` (the upper one of two): a round's figure that one noisy run cannot move. */
function median(xs) {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}

/** Prints `report` and writes it to `file` (creating its folder). */
function writeReport(file, report) {
  process.stdout.write(report);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, report);
  process.stderr.write(`written to ${path.relative(ROOT, file)}\n`);
}

module.exports = { machineLine, median, writeReport };
