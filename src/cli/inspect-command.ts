// `canopy inspect DIR`: print a version folder's manifest and check every
// file against it (presence, size, sha256, id count, ids on the right shard,
// each forest through the engine's load checks). The addon is imported by the
// action, so `--help` does not load it.
import type { Command } from 'commander';

import { type ForestCheck, inspectVersion } from '../indexer/inspect';
import type { Index as EngineIndex } from '../engine/engine-index';

/** The engine's load checks (sizes, node references, cycles; each sidecar's hashes and rules) without touching every page. */
const engineForestCheck = (Index: typeof EngineIndex): ForestCheck => (file, { dim, metric, sidecars }) => {
  const index = Index.load(file, { dim, metric, prefault: false });
  try {
    for (const sidecar of sidecars) index.loadSidecar(sidecar.kind, sidecar.file);
    return index.nItems;
  } finally {
    index.unload();
  }
};

export function registerInspectCommand(program: Command): void {
  program
    .command('inspect')
    .description('print a version folder\'s manifest, verify every file\'s size and sha256 and load each forest and sidecar; exits 1 naming what is wrong')
    .argument('<dir>', 'the version folder (holding manifest.json)')
    .action(async (dir: string) => {
      const { Index } = await import('../engine/engine-index.js');
      const { manifest, problems } = await inspectVersion(dir, engineForestCheck(Index));
      process.stdout.write(JSON.stringify(manifest, null, 2) + '\n');
      if (problems.length > 0) {
        throw new Error(`${dir} does not match its manifest:\n  ${problems.join('\n  ')}`);
      }
      const items = manifest.shards.reduce((sum, s) => sum + s.items, 0);
      process.stdout.write(`ok: ${manifest.index}/${manifest.version}, ${items} items in ${manifest.shardCount} shards, every size and sha256 matches, every forest and sidecar loads\n`);
    });
}
