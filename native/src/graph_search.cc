#include "graph_search.h"

#include <algorithm>
#include <functional>
#include <type_traits>
#include <utility>
#include <vector>

#include "search.h"

namespace canopy {
namespace {

template <class M>
struct GraphScratch {
  using Entry = std::pair<float, int32_t>;
  std::vector<uint32_t> visited;   // visited[i] == epoch iff item i was met in this search
  uint32_t epoch = 0;
  std::vector<Entry> frontier;     // min-heap of met, unexpanded items
  std::vector<Entry> best;         // max-heap of the ef closest met items
  std::vector<int32_t> unvisited;  // one row's ids not met before
  std::vector<int32_t> entry_ids;
  std::vector<float> entry_distances;

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

inline void prefetch(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off);
}

template <class M>
class GraphSearch {
 public:
  using Node = typename M::Node;
  using Entry = std::pair<float, int32_t>;

  GraphSearch(const Forest& forest, const GraphView& graph)
      : forest_(forest), graph_(graph), layout_(forest.layout()),
        walk_(forest.data(), forest.layout(), forest.n_items(), forest.n_nodes(), forest.roots()) {}

  size_t run(const float* input, int32_t item, const GraphQuery& q, int32_t* ids, float* distances, GraphSearchStats* stats) {
    if (q.k == 0) return 0;
    SearchScratch<M>& s = SearchScratch<M>::local();
    GraphScratch<M>& g = GraphScratch<M>::local();
    const Node* query = item >= 0 ? walk_.query_from_values(s, M::v(walk_.node(item))) : walk_.query_from_input(s, input);
    const size_t ef = std::max(q.k, static_cast<size_t>(q.ef > 0 ? q.ef : 1));
    enter(s, g, query, ef, q.entry_search_k);
    size_t computed = s.candidates.size();
    computed += expand(g, query, ef);
    forest_.check_intact(walk_.saw_bad_reference());
    if (stats != nullptr) stats->distances = computed;
    std::sort_heap(g.best.begin(), g.best.end());
    const size_t n = std::min(q.k, g.best.size());
    for (size_t i = 0; i < n; ++i) {
      ids[i] = g.best[i].second;
      distances[i] = M::normalized_distance(g.best[i].first);
    }
    return n;
  }

 private:
  const Node* node(int32_t i) const { return walk_.node(i); }

  // The forest's answer for ef seeds the beam. Every candidate it scored counts as met: those left
  // out were beaten by ef others already, so they could never enter the beam.
  void enter(SearchScratch<M>& s, GraphScratch<M>& g, const Node* query, size_t ef, int64_t entry_search_k) {
    const size_t cap = forest_.result_capacity(ef);
    g.entry_ids.resize(cap);
    g.entry_distances.resize(cap);
    if (entry_search_k <= 0) entry_search_k = layout_.max_bucket;
    walk_.run(s, query, ef, entry_search_k, g.entry_ids.data(), g.entry_distances.data());
    g.begin(forest_.n_items());
    for (int32_t c : s.candidates) {
      if (c < forest_.n_items()) g.visit(c);
    }
    // run() leaves its k best in s.best, sorted by (distance, id), before normalising them.
    g.best.assign(s.best.begin(), s.best.end());
    std::make_heap(g.best.begin(), g.best.end());
    g.frontier.assign(s.best.begin(), s.best.end());
    std::make_heap(g.frontier.begin(), g.frontier.end(), std::greater<Entry>());
  }

  // Best-first expansion; returns how many distances it computed.
  size_t expand(GraphScratch<M>& g, const Node* query, size_t ef) {
    const int f = layout_.value_count;
    const size_t row_bytes = sizeof(int32_t) * static_cast<size_t>(graph_.width);
    size_t computed = 0;
    while (!g.frontier.empty()) {
      std::pop_heap(g.frontier.begin(), g.frontier.end(), std::greater<Entry>());
      const Entry current = g.frontier.back();
      g.frontier.pop_back();
      if (g.best.size() >= ef && g.best.front() < current) break;  // nothing left can improve the beam
      if (!g.frontier.empty()) prefetch(graph_.row(g.frontier.front().second), row_bytes);
      const int32_t* row = graph_.row(current.second);
      g.unvisited.clear();
      for (int c = 0; c < graph_.width && row[c] != kNoNeighbour; ++c) {
        if (g.visit(row[c])) {
          g.unvisited.push_back(row[c]);
          prefetch(node(row[c]), layout_.node_size);
        }
      }
      for (int32_t j : g.unvisited) {
        const Node* item = node(j);
        if (item->n_descendants != 1) continue;  // a hole: only a corrupt graph names one
        ++computed;
        const Entry e(distance(query, item, f, g, ef), j);
        if (g.best.size() < ef) {
          g.best.push_back(e);
          std::push_heap(g.best.begin(), g.best.end());
        } else if (e < g.best.front()) {
          std::pop_heap(g.best.begin(), g.best.end());
          g.best.back() = e;
          std::push_heap(g.best.begin(), g.best.end());
        } else {
          continue;
        }
        g.frontier.push_back(e);
        std::push_heap(g.frontier.begin(), g.frontier.end(), std::greater<Entry>());
      }
    }
    return computed;
  }

  // Once the beam is full, an item only matters if it beats the beam's worst: stop summing early.
  float distance(const Node* query, const Node* item, int f, const GraphScratch<M>& g, size_t ef) const {
    if constexpr (M::kHasBoundedDistance) {
      if (g.best.size() == ef) return M::distance_bounded(query, item, f, g.best.front().first);
    }
    return M::distance(query, item, f);
  }

  const Forest& forest_;
  const GraphView& graph_;
  const NodeLayout& layout_;
  ForestSearch<M> walk_;
};

size_t dispatch(const Forest& forest, const GraphView& graph, const float* input, int32_t item, const GraphQuery& q,
                int32_t* ids, float* distances, GraphSearchStats* stats) {
  if (graph.n_items != forest.n_items()) {
    throw Error(ErrorCode::BadState, "neighbour graph has " + std::to_string(graph.n_items) + " rows, the forest " +
                                         std::to_string(forest.n_items()) + " items");
  }
  return with_metric(forest.layout().metric, [&](auto tag) -> size_t {
    using M = typename decltype(tag)::type;
    if constexpr (std::is_same_v<typename M::Distance, float>) {
      return GraphSearch<M>(forest, graph).run(input, item, q, ids, distances, stats);
    } else {
      throw Error(ErrorCode::InvalidArgument, "hamming indexes have no neighbour graph");
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
