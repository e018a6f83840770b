// Prometheus's own linter for scrape output and rules (`promtool check`), as
// installed by .ci/install-deps.sh. Without it the tests that lint fail, naming the fix.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

import { goBinDir } from './helm/chart';

export interface LintResult {
  readonly code: number | null;
  /** promtool's findings, one per line; empty when the exposition is clean. */
  readonly output: string;
}

export function findPromtool(): string {
  const candidates = [process.env.PROMTOOL, path.join(goBinDir(), 'promtool')].filter((c): c is string => !!c);
  const found = candidates.find((c) => existsSync(c));
  if (found === undefined) throw new Error(`promtool is not installed (looked at ${candidates.join(', ')}): run \`bash .ci/install-deps.sh\``);
  return found;
}

/** Lints a Prometheus text exposition. */
export function checkMetrics(promtool: string, exposition: string): LintResult {
  return runPromtool(promtool, ['check', 'metrics'], exposition);
}

/** Checks a rules file (YAML, or JSON, which is YAML): syntax and every PromQL expression. */
export function checkRules(promtool: string, rules: string): LintResult {
  return runPromtool(promtool, ['check', 'rules', '--lint=all', '--lint-fatal'], rules);
}

function runPromtool(promtool: string, args: readonly string[], input: string): LintResult {
  const run = spawnSync(promtool, args, { input, encoding: 'utf8', timeout: 30_000 });
  return { code: run.status, output: `${run.stdout}${run.stderr}`.trim() };
}
