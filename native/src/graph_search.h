// Search over a forest and its neighbour graph (graph.h).
//
// A short forest search over the first kGraphEntryTrees trees (by default `ef` candidates, often
// one leaf) gives the entry points; a best-first beam search over the graph then keeps the `ef` closest items met and
// expands the closest unexpanded one until none is closer than the ef-th. Results are ordered by
// (distance, id), as Annoy's, and their distances are the forest's exact ones, equal to Annoy's for
// the same ids: the answer is approximate in which ids it finds, not in their distances.
//
// Items met are scored on exact float distances from the forest's rows, never on the codes of a
// sidecar: a query's reranks read float rows anyway, so over many queries every row is resident, and
// scoring on codes as well would add the codes (dim bytes per item) to the memory the search keeps
// resident. On 1,000,000 x 128 items codes scored faster (3.5x hnswlib-node's q/s at recall 0.95,
// against about 2x on float rows), but forest rows, graph and codes together outgrew hnswlib's index.
#pragma once

#include <cstddef>
#include <cstdint>

#include "forest.h"
#include "graph.h"

namespace canopy {

// Trees the entry search walks. Each tree walked costs a root-to-leaf chain of dependent reads; one
// tree alone often enters in another cluster than the query's, which a graph of near neighbours
// cannot leave (recall@10 stalled at 0.978 on a 100,000-item mixture of 200 clusters, whatever ef),
// while 10 entered well (0.99 at ef 32). More trees only help the forest's own search.
constexpr int kGraphEntryTrees = 10;
// Unless asked for another count, the entry search collects `ef` candidates (Annoy's count: at
// least one leaf), so the beam starts full. Each costs a full distance: on 100,000 x 100 angular
// items (leaves of ~72) a second leaf at ef 16 (search_k 100) cost as much time as ef 16 -> 20 and
// gained less recall (0.953 against 0.959), while one leaf at high ef stalled recall at 0.997 (the
// beam stays in the cluster it entered) where ef candidates reached 0.999 at ef 64 in the same time.

struct GraphQuery {
  size_t k = 10;
  int ef = 0;                  // beam width, >= 1 (raised to k when below it)
  int64_t entry_search_k = 0;  // forest candidates for the entry points; <= 0: ef
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
