// A shard's sidecars (docs/sidecar-format.md), loaded beside its forest when
// they pass every check, or set aside with the reason. A sidecar only makes
// searches cheaper: a shard without one serves all the same (exact forest
// search without codes; `ef` ignored without a graph), and says so.
import { access } from 'node:fs/promises';
import path from 'node:path';

import { SIDECAR_KINDS, type ShardEntry, type SidecarKind, verifyFile } from '../format/manifest';
import type { SidecarState } from '../telemetry/instruments';
import type { ShardForest } from './shard-forest';

export interface SidecarStatus {
  readonly kind: SidecarKind;
  readonly state: SidecarState;
  /** Why it is missing or refused; set iff state is `missing` or `refused`. */
  readonly reason?: string;
}

export interface SidecarLoadOptions {
  /** Check sha256 against the manifest (the engine checks its own hashes either way). */
  readonly verifyChecksums: boolean;
  readonly prefault: boolean;
}

/** Loads each sidecar `entry` lists into `forest`; one status per kind, in SIDECAR_KINDS order. Never throws for a sidecar. */
export async function loadSidecars(dir: string, entry: ShardEntry, forest: ShardForest, options: SidecarLoadOptions): Promise<SidecarStatus[]> {
  const statuses: SidecarStatus[] = [];
  for (const kind of SIDECAR_KINDS) {
    const listed = entry.sidecars?.find((s) => s.kind === kind);
    if (listed === undefined) {
      statuses.push({ kind, state: 'absent' });
      continue;
    }
    try {
      await access(path.join(dir, listed.file));
    } catch {
      statuses.push({ kind, state: 'missing', reason: `${path.join(dir, listed.file)} is not there` });
      continue;
    }
    try {
      forest.loadSidecar(kind, await verifyFile(dir, listed, options.verifyChecksums), { prefault: options.prefault });
      statuses.push({ kind, state: 'loaded' });
    } catch (err) {
      statuses.push({ kind, state: 'refused', reason: (err as Error).message });
    }
  }
  return statuses;
}
