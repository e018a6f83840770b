// The etcd key layout of one Canopy cluster (docs/design.md, "etcd keys"):
//
//   /canopy/<cluster>/nodes/<node-id>                 lease-bound NodeRecord
//   /canopy/<cluster>/indexes/<index>/versions/<v>    the manifest of version v (+ where its files are)
//   /canopy/<cluster>/indexes/<index>/target          the version the cluster should move to
//   /canopy/<cluster>/indexes/<index>/active          the version routers query
//
// Every key is built and parsed here and nowhere else.

export type ParsedKey =
  | { readonly kind: 'node'; readonly nodeId: string }
  | { readonly kind: 'version'; readonly index: string; readonly version: string }
  | { readonly kind: 'target'; readonly index: string }
  | { readonly kind: 'active'; readonly index: string };

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function checkSegment(what: string, value: string): string {
  if (!SEGMENT.test(value)) {
    throw new RangeError(`${what} ${JSON.stringify(value)} must be 1-128 letters, digits, '.', '_' or '-'`);
  }
  return value;
}

/** The cluster every command names unless told otherwise (`canopy up` included). */
export const DEFAULT_CLUSTER_NAME = 'default';

export class ClusterKeys {
  /** Every key of the cluster starts with this. */
  readonly root: string;

  constructor(readonly cluster: string) {
    this.root = `/canopy/${checkSegment('cluster name', cluster)}/`;
  }

  get nodesPrefix(): string {
    return `${this.root}nodes/`;
  }

  get indexesPrefix(): string {
    return `${this.root}indexes/`;
  }

  node(nodeId: string): string {
    return `${this.nodesPrefix}${checkSegment('node id', nodeId)}`;
  }

  versionsPrefix(index: string): string {
    return `${this.indexesPrefix}${checkSegment('index name', index)}/versions/`;
  }

  version(index: string, version: string): string {
    return `${this.versionsPrefix(index)}${checkSegment('version', version)}`;
  }

  target(index: string): string {
    return `${this.indexesPrefix}${checkSegment('index name', index)}/target`;
  }

  active(index: string): string {
    return `${this.indexesPrefix}${checkSegment('index name', index)}/active`;
  }

  /** What a key of this cluster names, or undefined for a key this layout does not know. */
  parse(key: string): ParsedKey | undefined {
    if (!key.startsWith(this.root)) return undefined;
    const parts = key.slice(this.root.length).split('/');
    if (parts[0] === 'nodes' && parts.length === 2) return { kind: 'node', nodeId: parts[1]! };
    if (parts[0] !== 'indexes') return undefined;
    const index = parts[1]!;
    if (parts.length === 3 && (parts[2] === 'target' || parts[2] === 'active')) {
      return { kind: parts[2], index };
    }
    if (parts.length === 4 && parts[2] === 'versions') return { kind: 'version', index, version: parts[3]! };
    return undefined;
  }
}
