#include "graph_search.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "search.h"

namespace canopy {
namespace {

using Entry = std::pair<float, int32_t>;
constexpr float kUnreachable = std::numeric_limits<float>::infinity();

inline void prefetch(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off);
  __builtin_prefetch(c + bytes - 1);  // a record that straddles one more line than its size says
}

struct GraphScratch {
  // visited[i] == epoch iff item i was met in this search. Two bytes per item (it is heap the search
  // keeps per thread, beside the index's memory); the clearing every 65,535 searches is one memset.
  std::vector<uint16_t> visited;
  uint16_t epoch = 0;
  std::vector<Entry> frontier;     // min-heap of met, unexpanded items
  std::vector<Entry> best;         // max-heap of the ef closest met items
  std::vector<int32_t> unvisited;  // one row's ids not met before

  // Starts a search over n items: every stamp differs from the new epoch.
  void begin(int32_t n) {
    if (visited.size() < static_cast<size_t>(n)) visited.resize(static_cast<size_t>(n), 0);
    if (++epoch == 0) {
      std::fill(visited.begin(), visited.end(), 0);
      epoch = 1;
    }
  }
  bool visit(int32_t i) {
    if (visited[static_cast<size_t>(i)] == epoch) return false;
    visited[static_cast<size_t>(i)] = epoch;
    return true;
  }

  __attribute__((noinline)) static GraphScratch& local() {  // noinline: see SearchScratch::local
    static thread_local GraphScratch scratch;
    return scratch;
  }
};

// Exact internal distances from the forest's rows; holes score kUnreachable.
template <class M>
class ExactScorer {
 public:
  using Node = typename M::Node;
  ExactScorer(const ForestSearch<M>& walk, const Node* query, const NodeLayout& layout)
      : walk_(walk), query_(query), layout_(layout) {}

  // `bound`: the beam's worst when full, else kUnreachable. Above it, any larger value will do.
  float operator()(int32_t id, float bound) const {
    const Node* item = walk_.node(id);
    if (item->n_descendants != 1) return kUnreachable;  // a hole: only a corrupt graph names one
    if constexpr (M::kHasBoundedDistance) {
      if (bound != kUnreachable) return M::distance_bounded(query_, item, layout_.value_count, bound);
    }
    return M::distance(query_, item, layout_.value_count);
  }
  void prefetch_item(int32_t id) const { prefetch(walk_.node(id), layout_.node_size); }

 private:
  const ForestSearch<M>& walk_;
  const Node* query_;
  const NodeLayout& layout_;
};

// The beam search proper, over whichever scores `score` gives; returns how many it computed.
template <class Scorer>
class Beam {
 public:
  Beam(GraphScratch& g, const GraphView& graph, const Scorer& score, size_t ef) : g_(g), graph_(graph), score_(score), ef_(ef) {}

  // Scores the forest's candidates: the ef best seed the beam. Every candidate counts as met: those
  // left out were beaten by ef others already, so they could never enter the beam.
  size_t enter(const std::vector<int32_t>& candidates) {
    g_.begin(graph_.n_items);
    g_.best.clear();
    g_.frontier.clear();
    g_.unvisited.clear();
    for (int32_t c : candidates) {
      if (c < graph_.n_items && g_.visit(c)) g_.unvisited.push_back(c);
    }
    return score_unvisited();
  }

  // Best-first expansion; returns how many items it scored.
  size_t expand() {
    const size_t row_bytes = sizeof(int32_t) * static_cast<size_t>(graph_.width);
    size_t scored = 0;
    while (!g_.frontier.empty()) {
      std::pop_heap(g_.frontier.begin(), g_.frontier.end(), std::greater<Entry>());
      const Entry current = g_.frontier.back();
      g_.frontier.pop_back();
      if (g_.best.size() >= ef_ && g_.best.front() < current) break;  // nothing left can improve the beam
      if (!g_.frontier.empty()) prefetch(graph_.row(g_.frontier.front().second), row_bytes);
      const int32_t* row = graph_.row(current.second);
      g_.unvisited.clear();
      for (int c = 0; c < graph_.width && row[c] != kNoNeighbour; ++c) {
        if (g_.visit(row[c])) g_.unvisited.push_back(row[c]);
      }
      scored += score_unvisited();
    }
    return scored;
  }

 private:
  // Scores g.unvisited (prefetching a few ahead) and keeps those that enter the beam.
  size_t score_unvisited() {
    // Items fetched ahead. A row names up to `width` items at random addresses: the more misses in
    // flight, the better, up to what the core tracks. Interleaved A/B at ef 32 on 1,000,000 x 128
    // (then scored on 132-byte codes): 99.6 µs/query with 4 ahead, 94.0 with 8, 92.5 with 16 and 32.
    constexpr size_t kAhead = 16;
    const std::vector<int32_t>& ids = g_.unvisited;
    const size_t n = ids.size();
    for (size_t c = 0; c < n && c < kAhead; ++c) score_.prefetch_item(ids[c]);
    for (size_t c = 0; c < n; ++c) {
      if (c + kAhead < n) score_.prefetch_item(ids[c + kAhead]);
      const bool full = g_.best.size() >= ef_;
      const Entry e(score_(ids[c], full ? g_.best.front().first : kUnreachable), ids[c]);
      if (!(e.first < kUnreachable)) continue;
      if (!full) {
        g_.best.push_back(e);
        std::push_heap(g_.best.begin(), g_.best.end());
      } else if (e < g_.best.front()) {
        std::pop_heap(g_.best.begin(), g_.best.end());
        g_.best.back() = e;
        std::push_heap(g_.best.begin(), g_.best.end());
      } else {
        continue;
      }
      g_.frontier.push_back(e);
      std::push_heap(g_.frontier.begin(), g_.frontier.end(), std::greater<Entry>());
    }
    return n;
  }

  GraphScratch& g_;
  const GraphView& graph_;
  const Scorer& score_;
  const size_t ef_;
};

template <class M>
class GraphSearch {
 public:
  using Node = typename M::Node;

  GraphSearch(const Forest& forest, const GraphView& graph)
      : forest_(forest), graph_(graph), layout_(forest.layout()),
        walk_(forest.data(), forest.layout(), forest.n_items(), forest.n_nodes(), entry_roots(forest)) {}

  // The first kGraphEntryTrees roots: per-thread, so a warm thread does not allocate.
  static const std::vector<int32_t>& entry_roots(const Forest& forest) {
    static thread_local std::vector<int32_t> roots;
    const size_t n = std::min(static_cast<size_t>(kGraphEntryTrees), forest.roots().size());
    roots.assign(forest.roots().begin(), forest.roots().begin() + static_cast<std::ptrdiff_t>(n));
    return roots;
  }

  // item >= 0: search by item, else by `input`.
  size_t run(const float* input, int32_t item, const GraphQuery& q, int32_t* ids, float* distances, GraphSearchStats* stats) {
    if (q.k == 0) return 0;
    SearchScratch<M>& s = SearchScratch<M>::local();
    GraphScratch& g = GraphScratch::local();
    const Node* query = item >= 0 ? walk_.query_from_values(s, M::v(walk_.node(item))) : walk_.query_from_input(s, input);
    const size_t ef = std::max(q.k, static_cast<size_t>(q.ef > 0 ? q.ef : 1));
    walk_.collect_candidates(s, query, q.entry_search_k > 0 ? q.entry_search_k : static_cast<int64_t>(ef));
    const ExactScorer<M> exact(walk_, query, layout_);
    GraphSearchStats counted;
    Beam<ExactScorer<M>> beam(g, graph_, exact, ef);
    counted.distances = beam.enter(s.candidates) + beam.expand();
    std::sort_heap(g.best.begin(), g.best.end());
    forest_.check_intact(walk_.saw_bad_reference());
    if (stats != nullptr) *stats = counted;
    const size_t n = std::min(q.k, g.best.size());
    for (size_t i = 0; i < n; ++i) {
      ids[i] = g.best[i].second;
      distances[i] = M::normalized_distance(g.best[i].first);
    }
    return n;
  }

 private:
  const Forest& forest_;
  const GraphView& graph_;
  const NodeLayout& layout_;
  ForestSearch<M> walk_;
};

size_t dispatch(const Forest& forest, const GraphView& graph, const float* input, int32_t item,
                const GraphQuery& q, int32_t* ids, float* distances, GraphSearchStats* stats) {
  if (graph.n_items != forest.n_items()) {
    throw Error(ErrorCode::BadState, "neighbour graph has " + std::to_string(graph.n_items) + " rows, the forest " +
                                         std::to_string(forest.n_items()) + " items");
  }
  return with_metric(forest.layout().metric, [&](auto tag) -> size_t {
    using M = typename decltype(tag)::type;
    if constexpr (std::is_same_v<typename M::Distance, float> && M::kKind != MetricKind::Dot) {
      return GraphSearch<M>(forest, graph).run(input, item, q, ids, distances, stats);
    } else {
      throw Error(ErrorCode::InvalidArgument, std::string(metric_name(M::kKind)) + " indexes have no neighbour graph");
    }
  });
}

}  // namespace

size_t graph_search_vector(const Forest& forest, const GraphView& graph, const float* query, const GraphQuery& q,
                           int32_t* ids, float* distances, GraphSearchStats* stats) {
  return dispatch(forest, graph, query, -1, q, ids, distances, stats);
}

size_t graph_search_item(const Forest& forest, const GraphView& graph, int32_t item, const GraphQuery& q,
                         int32_t* ids, float* distances, GraphSearchStats* stats) {
  forest.check_item(item, "item");
  return dispatch(forest, graph, nullptr, item, q, ids, distances, stats);
}

}  // namespace canopy
