// Builds the neighbour graph of a forest's items (graph.h).
//
// 1. Seed: the items sharing a leaf bucket in the first seed_trees trees are scored pairwise; each
//    item keeps its `candidates` best (a bounded list, ordered by (distance, id)).
// 2. Refine by NN-descent: a neighbour's neighbour is likely a neighbour. Each round joins, for every
//    item, its recently added list entries with each other and with its older ones (forward and
//    reverse), until a round changes fewer than 8% of the entries or `iterations` rounds ran.
// 3. Prune each list to `width` for diversity (the relative-neighbourhood rule of HNSW, NSG and
//    Vamana): a candidate is dropped when a kept neighbour is closer to it than the item is. Then add
//    every kept edge's reverse and prune again, so that hubs are reachable from their neighbourhoods.
//
// Deterministic for a forest and options whatever n_threads is: a list is the best entries of
// everything ever offered to it, ordered by (distance, id), so the order offers arrive in does not
// matter, and everything sampled or capped is chosen in item order.
#pragma once

#include <cstdint>

#include "forest.h"
#include "graph.h"

namespace canopy {

struct GraphBuildOptions {
  int width = 0;        // most neighbours per item (R); 0: 32, or 16 below 32 dimensions
  int candidates = 0;   // list length while refining (L >= width); 0: width + width / 2
  int iterations = 6;   // most NN-descent rounds; 0 keeps the forest's seeding only
  int seed_trees = 8;   // trees whose leaves seed the lists (fewer if the forest has fewer)
  int n_threads = 1;

  // Resolves the zero defaults for `dim`; throws Error InvalidArgument naming a bad option.
  GraphBuildOptions resolved(int dim) const;
};

// Throws Error InvalidArgument for dot and hamming forests (their distances do not obey the
// triangle inequality the pruning relies on).
Graph build_graph(const Forest& forest, const GraphBuildOptions& options);

}  // namespace canopy
