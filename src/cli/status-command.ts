// `canopy status`: indexes, their versions, and per shard the replicas with their state.
import type { Command } from 'commander';

import { type ClusterSnapshot, readCluster } from '../registry/cluster-view';
import type { NodeRecord } from '../registry/records';
import { addEtcdFlags, type EtcdFlags, withRegistry } from './etcd-flags';

interface StatusFlags extends EtcdFlags {
  readonly json?: boolean;
}

export function registerStatusCommand(program: Command): void {
  addEtcdFlags(
    program.command('status').description('show indexes, versions and every shard replica with its state').option('--json', 'print JSON'),
  ).action(async (flags: StatusFlags) => {
    const snapshot = await withRegistry(flags, readCluster);
    process.stdout.write(flags.json ? `${JSON.stringify(statusJson(snapshot), null, 2)}\n` : formatStatus(snapshot));
  });
}

function statusJson(snapshot: ClusterSnapshot): unknown {
  return {
    revision: snapshot.revision,
    nodes: Object.fromEntries(snapshot.nodes),
    indexes: Object.fromEntries(
      [...snapshot.indexes].map(([name, view]) => [
        name,
        { active: view.active ?? null, target: view.target ?? null, versions: Object.fromEntries(view.versions) },
      ]),
    ),
  };
}

/** One block per index: its versions, newest first, and under each the replicas of every shard. */
export function formatStatus(snapshot: ClusterSnapshot): string {
  const lines: string[] = [];
  if (snapshot.indexes.size === 0) lines.push('no index published');
  for (const [name, view] of [...snapshot.indexes].sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(`index ${name}  active ${view.active ?? '-'}  target ${view.target ?? '-'}`);
    const versions = [...view.versions].sort(([, a], [, b]) => b.publishedAt.localeCompare(a.publishedAt));
    for (const [version, record] of versions) {
      const tags = [version === view.active ? 'active' : '', version === view.target ? 'target' : ''].filter(Boolean);
      lines.push(`  version ${version}${tags.length ? ` (${tags.join(', ')})` : ''}  published ${record.publishedAt}  ${record.location}`);
      if (record.forced !== undefined) lines.push(`    forced by ${record.forced.by} over: ${record.forced.overrode.join('; ')}`);
      for (let shard = 0; shard < record.manifest.shardCount; shard++) {
        const replicas = replicasOf(snapshot.nodes, name, shard, version);
        lines.push(`    shard ${shard}: ${replicas.length ? replicas.join(', ') : 'no replica'}`);
      }
    }
  }
  const unassigned = [...snapshot.nodes].filter(([, n]) => !snapshot.indexes.has(n.index));
  for (const [id, node] of unassigned) lines.push(`node ${id} (${node.addr}) serves index ${node.index}, which is not published`);
  return `${lines.join('\n')}\n`;
}

function replicasOf(nodes: ReadonlyMap<string, NodeRecord>, index: string, shard: number, version: string): string[] {
  const out: string[] = [];
  for (const [id, node] of [...nodes].sort(([a], [b]) => a.localeCompare(b))) {
    if (node.index !== index || node.shard !== shard) continue;
    const state = node.versions[version];
    if (!state) continue;
    const detail = state.state === 'failed' ? `failed: ${state.reason}` : state.state;
    out.push(`${id} ${node.addr} ${detail}${node.stopping ? ' (stopping)' : ''}`);
  }
  return out;
}
