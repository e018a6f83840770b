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
// 4. Unless a width was asked for, choose it (chosen_width): the pruning, not the width, decides how
//    many neighbours an item keeps, so rows wider than most pruned lists are mostly padding that
//    costs memory; too narrow cuts lists short.
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
  int width = 0;        // most neighbours per item (R); 0: chosen by the build, a multiple of 8 in 16..48
  int candidates = 0;   // list length while refining (L >= width); 0: 48 (width 0), else width + width / 2
  int iterations = 6;   // most NN-descent rounds; 0 keeps the forest's seeding only
  int seed_trees = 8;   // trees whose leaves seed the lists (fewer if the forest has fewer)
  int n_threads = 1;
  bool choose_width = false;  // set by resolved() when width was 0: prune to kGraphMaxChosenWidth, then choose

  // Resolves the zero defaults for `dim`; throws Error InvalidArgument naming a bad option.
  GraphBuildOptions resolved(int dim) const;
};

constexpr int kGraphMaxChosenWidth = 48;
// Rows of a chosen width hold the whole pruned list of at least this share of items; the longer
// lists lose their farthest (last kept) neighbours.
constexpr double kGraphWidthCoverage = 0.95;

// The width a build chooses for pruned rows of `width` ids: the least multiple of 8, at least 16,
// holding kGraphWidthCoverage of the rows whole; at most `width`.
int chosen_width(const GraphView& pruned);

// Throws Error InvalidArgument for dot and hamming forests (their distances do not obey the
// triangle inequality the pruning relies on).
Graph build_graph(const Forest& forest, const GraphBuildOptions& options);

}  // namespace canopy
