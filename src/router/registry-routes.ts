// Keeps a router's routes in step with the cluster in etcd: one route per
// index that has an active version, whose view is that version and whose
// replicas are the live, not stopping shard nodes that report it ready.
import type { Logger } from 'pino';

import type { ClusterSnapshot } from '../registry/cluster-view';
import type { NodeRecord, VersionRecord } from '../registry/records';
import { declareRouterIndex } from '../telemetry/instruments';
import { IndexRoute, type IndexRouteOptions } from './index-route';
import type { IndexView } from './index-view';

/** Applies `snapshot` to `routes` (adding, updating and closing routes). */
export function applySnapshot(
  routes: Map<string, IndexRoute>,
  snapshot: ClusterSnapshot,
  options: IndexRouteOptions,
  log: Logger,
): void {
  const live = new Set<string>();
  for (const [name, index] of snapshot.indexes) {
    const active = index.active;
    const record = active === undefined ? undefined : index.versions.get(active);
    if (active === undefined || record === undefined) continue;
    live.add(name);
    let route = routes.get(name);
    if (route === undefined) {
      route = new IndexRoute(options, log);
      routes.set(name, route);
    }
    // Replicas first: a request pinned to the new view must find replicas that hold it.
    setReplicas(route, name, active, record.manifest.shardCount, snapshot.nodes.values());
    if (route.view?.version !== active) {
      log.info({ index: name, from: route.view?.version, to: active }, 'active version');
      route.view = viewOf(name, active, record);
      declareRouterIndex(name, record.manifest.shardCount);
    }
  }
  for (const [name, route] of routes) {
    if (live.has(name)) continue;
    log.info({ index: name }, 'index no longer active; route closed');
    route.close();
    routes.delete(name);
  }
}

function setReplicas(route: IndexRoute, index: string, version: string, shardCount: number, nodes: Iterable<NodeRecord>): void {
  const byShard = Array.from({ length: shardCount }, () => [] as string[]);
  for (const node of nodes) {
    if (node.index !== index || node.stopping || node.versions[version]?.state !== 'ready') continue;
    byShard[node.shard]?.push(node.addr);
  }
  byShard.forEach((addresses, shard) => route.pool.setReplicas(shard, addresses));
  for (const shard of route.pool.shardNumbers()) if (shard >= shardCount) route.pool.setReplicas(shard, []);
}

function viewOf(index: string, version: string, record: VersionRecord): IndexView {
  const { metric, dim, shardCount, nTrees } = record.manifest;
  return { index, version, metric, dim, shardCount, nTrees };
}
