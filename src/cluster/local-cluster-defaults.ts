// The shape of `canopy up`'s cluster by default. Constants only, importing
// nothing: `canopy up --help` shows them without loading etcd3 or gRPC.

export const DEFAULT_LOCAL_SHARDS = 2;
export const DEFAULT_LOCAL_REPLICAS = 2;
/** gRPC's customary port; 0 picks a free one. */
export const DEFAULT_ROUTER_PORT = 50051;
