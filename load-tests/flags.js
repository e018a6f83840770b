'use strict';
// `--kebab-case VALUE` flags of the load scripts, parsed against a defaults
// object: every flag must name a default, and takes the default's type. The
// one flag parser of load-tests/; scripts keep only their DEFAULTS.

const kebab = (key) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

function parseFlags(argv, defaults) {
  const opts = { ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!argv[i].startsWith('--') || !(key in opts) || argv[i + 1] === undefined) {
      throw new Error(`bad argument ${argv[i]}; each flag takes a value: ${Object.keys(defaults).map(kebab).join(' ')}`);
    }
    const value = typeof defaults[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
    if (typeof value === 'number' && Number.isNaN(value)) throw new Error(`${argv[i]} needs a number, got ${argv[i + 1]}`);
    opts[key] = value;
  }
  return opts;
}

module.exports = { parseFlags };
