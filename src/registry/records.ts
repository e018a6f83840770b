// The JSON values stored under the cluster's keys.

/** What a shard node says of one index version it holds. */
export type VersionState =
  | { readonly state: 'loading' }
  | { readonly state: 'ready' }
  | { readonly state: 'failed'; readonly reason: string };

/** The value of `nodes/<node-id>`: bound to the node's lease, so it vanishes when the node dies. */
export interface NodeRecord {
  /** host:port the node serves gRPC on. */
  readonly addr: string;
  readonly index: string;
  readonly shard: number;
  readonly versions: Readonly<Record<string, VersionState>>;
  /** Set once the node has begun a graceful stop: routers send it no new queries. */
  readonly stopping: boolean;
}

/** The value of `indexes/<index>/versions/<v>`: the manifest, and where its folder is. */
export interface VersionRecord {
  /** The version folder (holding manifest.json and the shard files), as the shard nodes see it. */
  readonly location: string;
  readonly manifest: import('../format/manifest').Manifest;
  readonly publishedAt: string;
  /** Set iff `canopy publish --force` skipped checks that refused this version. */
  readonly forced?: ForcedPublish;
}

/** Who published over which refusals, so a bad version's history says who overrode what. */
export interface ForcedPublish {
  /** `--forced-by`, default user@host of the publishing process. */
  readonly by: string;
  /** The checks' refusals that were overridden, as publish worded them. */
  readonly overrode: readonly string[];
}

export class RecordError extends Error {
  override readonly name = 'RecordError';
}

/** Parses a node record, refusing values that do not have its shape. */
export function parseNodeRecord(key: string, text: string): NodeRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new RecordError(`${key}: not JSON`);
  }
  const r = value as Partial<NodeRecord>;
  if (
    typeof r !== 'object' || r === null ||
    typeof r.addr !== 'string' || typeof r.index !== 'string' ||
    !Number.isInteger(r.shard) || typeof r.versions !== 'object' || r.versions === null ||
    typeof r.stopping !== 'boolean'
  ) {
    throw new RecordError(`${key}: not a node record`);
  }
  return r as NodeRecord;
}
