// Builds the neighbour graph of a forest's items (graph.h).
//
// 1. Seed: the items sharing a leaf bucket in the first seed_trees trees are scored pairwise; each
//    item keeps its `candidates` best (a bounded list, ordered by (distance, id)).
// 2. Refine by NN-descent: a neighbour's neighbour is likely a neighbour. Each round joins, for every
//    item, its recently added list entries with each other and with its older ones (forward and
//    reverse), until a round changes fewer than 8% of the entries or `iterations` rounds ran.
// 3. Prune each list to `width` for diversity (the relative-neighbourhood rule of HNSW, NSG and
//    Vamana): a candidate is dropped when a kept neighbour is closer to it than the item is, by a
//    factor prune_alpha (Vamana's alpha). Then add every kept edge's reverse and prune again, so that
//    hubs are reachable from their neighbourhoods.
// 4. Unless a width was asked for, choose it first (chosen_width) from strict prunes (alpha 1) to 48
//    of a sample of the lists: that rule, not the width, decides how many close neighbours an item
//    has, so rows wider than most strictly pruned lists are mostly padding that costs memory; too
//    narrow cuts lists short. The relaxed prune then fills rows of that width, closest first.
//
// Deterministic for a forest and options whatever n_threads is: a list is the best entries of
// everything ever offered to it, ordered by (distance, id), so the order offers arrive in does not
// matter, and everything sampled or capped is chosen in item order.
#pragma once

#include <cstdint>

#include "forest.h"
#include "graph.h"

namespace canopy {

// A candidate is pruned only when a kept neighbour is closer to it than the item is by this factor,
// on the metric's internal distance (squared for angular and euclidean, so about 1.095 on distances).
// 1 (the strict rule) keeps only near edges: on a mixture of clusters a search that enters in the
// wrong cluster has few ways out. A little slack keeps some longer edges in the same rows. On
// 100,000 x 100 angular items, rows of 16, recall@10 at ef 16 rose from 0.942 to 0.959 and at ef 32
// from 0.985 to 0.990 for about the same time (1.44: 0.953 / 0.987, and rows of 24 at 1.2 would
// reach 0.976 / 0.995 for 3 MiB more than hnswlib-node's index).
constexpr float kGraphPruneAlpha = 1.2f;

struct GraphBuildOptions {
  int width = 0;        // most neighbours per item (R); 0: chosen by the build, a multiple of 8 in 16..48
  int candidates = 0;   // list length while refining (L >= width); 0: 48 (width 0), else width + width / 2
  int iterations = 6;   // most NN-descent rounds; 0 keeps the forest's seeding only
  int seed_trees = 8;   // trees whose leaves seed the lists (fewer if the forest has fewer)
  int n_threads = 1;
  float prune_alpha = kGraphPruneAlpha;  // in 1..2
  bool choose_width = false;  // set by resolved() when width was 0: choose from strict prunes to kGraphMaxChosenWidth

  // Resolves the zero defaults for `dim`; throws Error InvalidArgument naming a bad option.
  GraphBuildOptions resolved(int dim) const;
};

constexpr int kGraphMaxChosenWidth = 48;
// Rows of a chosen width would hold the whole strictly pruned list of at least this share of items.
constexpr double kGraphWidthCoverage = 0.95;

// The width a build chooses for pruned rows of `width` ids: the least multiple of 8, at least 16,
// holding kGraphWidthCoverage of the rows whole; at most `width`.
int chosen_width(const GraphView& pruned);

// Throws Error InvalidArgument for dot and hamming forests (their distances do not obey the
// triangle inequality the pruning relies on).
Graph build_graph(const Forest& forest, const GraphBuildOptions& options);

}  // namespace canopy
