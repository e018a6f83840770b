// Search over a forest and its neighbour graph (graph.h).
//
// A short forest search (entry_search_k candidates, usually one leaf of the best tree) gives the
// entry points; a best-first beam search over the graph then keeps the `ef` closest items met and
// expands the closest unexpanded one until none is closer than the ef-th. Distances are the forest's
// exact ones, so returned distances equal Annoy's for the same ids; the answer is approximate in
// which ids it finds, not in their distances. Results are ordered by (distance, id), as Annoy's.
#pragma once

#include <cstddef>
#include <cstdint>

#include "forest.h"
#include "graph.h"

namespace canopy {

struct GraphQuery {
  size_t k = 10;
  int ef = 0;                  // beam width, >= 1 (raised to k when below it)
  int64_t entry_search_k = 0;  // forest candidates for the entry points; <= 0: the forest's bucket size
};

struct GraphSearchStats {
  size_t distances = 0;  // exact distances computed (entry candidates included)
};

// Write at most forest.result_capacity(k) results, best first, and return how many. Thread-safe;
// per-thread scratch is reused, so a warm thread searches without allocating. The graph must be the
// forest's (graph.n_items == forest.n_items(), rows checked or built here). Throws Error BadFile
// as Forest's searches do when the mapped forest changed on disk.
size_t graph_search_vector(const Forest& forest, const GraphView& graph, const float* query, const GraphQuery& q,
                           int32_t* ids, float* distances, GraphSearchStats* stats = nullptr);
// Throws Error OutOfRange unless 0 <= item < n_items.
size_t graph_search_item(const Forest& forest, const GraphView& graph, int32_t item, const GraphQuery& q,
                         int32_t* ids, float* distances, GraphSearchStats* stats = nullptr);

}  // namespace canopy
