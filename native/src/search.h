// Annoy's query: best-first walk over all trees until search_k candidates are collected, then exact
// distances and the k best by (distance, id).
//
// Results equal Annoy's for the same file, query and search_k: the frontier pops the largest
// (priority, node) pair first, as std::priority_queue<pair<T,S>> does (the order is total, so any
// binary heap pops the same sequence); candidates are counted with duplicates, as Annoy counts them;
// and the final order is by (distance, id). Deduplication uses a bitset instead of sort+unique and the
// k best are kept in a bounded heap; neither changes the result set or its order.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "forest.h"

namespace canopy {

template <class M>
struct SearchScratch {
  using Entry = std::pair<typename M::Distance, int32_t>;
  std::vector<Entry> frontier;      // max-heap of (priority, node)
  std::vector<int32_t> candidates;  // unique candidate ids in discovery order
  std::vector<uint64_t> seen;       // bit per node, all clear between searches
  std::vector<Entry> best;          // max-heap of the k best (distance, id)
  std::vector<uint64_t> query;      // one node, 8-byte aligned

  // Per thread and per metric; grows to the largest forest searched, then stays. Not inlined: inlined,
  // GCC recomputes the thread_local's address (a __tls_get_addr call in this shared object) at every
  // use in the search loops instead of keeping it in a register, which cost 10-15% at search_k 3000.
  __attribute__((noinline)) static SearchScratch& local() {
    static thread_local SearchScratch scratch;
    return scratch;
  }
};

template <class M>
class ForestSearch {
 public:
  using Node = typename M::Node;
  using Value = typename M::Value;
  using Dist = typename M::Distance;
  using Entry = std::pair<Dist, int32_t>;

  ForestSearch(const uint8_t* nodes, const NodeLayout& layout, int32_t n_items, int32_t n_nodes,
               const std::vector<int32_t>& roots)
      : nodes_(nodes), layout_(layout), n_items_(n_items), n_nodes_(n_nodes), roots_(roots),
        prefetch_split_bytes_(layout.node_size < 512 ? layout.node_size : 512) {}

  const Node* node(int32_t i) const {
    return reinterpret_cast<const Node*>(nodes_ + layout_.node_size * static_cast<size_t>(i));
  }

  // The scratch query node from stored values (Annoy: zero the node, copy v, init_node).
  Node* query_from_values(SearchScratch<M>& s, const Value* values) const {
    Node* q = cleared_query(s);
    std::memcpy(M::v(q), values, sizeof(Value) * layout_.value_count);
    M::init_node(q, layout_.value_count);
    return q;
  }

  // The scratch query node from the user's floats (hamming packs them into bits).
  Node* query_from_input(SearchScratch<M>& s, const float* input) const {
    Node* q = cleared_query(s);
    M::pack(input, M::v(q), layout_.dim);
    M::init_node(q, layout_.value_count);
    return q;
  }

  size_t run(SearchScratch<M>& s, const Node* query, size_t k, int64_t search_k, int32_t* ids, float* distances) {
    if (k == 0) return 0;  // nothing asked; rank() needs a non-empty heap to compare against
    if (search_k <= 0) search_k = static_cast<int64_t>(k) * static_cast<int64_t>(roots_.size());
    collect(s, M::v(query), static_cast<uint64_t>(search_k));
    return rank(s, query, k, ids, distances);
  }

  // The walk alone, for a caller that scores candidates its own way: leaves the unique candidates
  // (the ids buckets name, not checked to be items) in s.candidates, and the bitset clear.
  void collect_candidates(SearchScratch<M>& s, const Node* query, int64_t search_k) {
    collect(s, M::v(query), static_cast<uint64_t>(search_k));
    for (int32_t id : s.candidates) s.seen[static_cast<uint32_t>(id) >> 6] = 0;
  }

  // True if the last run met a reference Forest::load would have refused: the mapped file was
  // rewritten in place after loading (see mapping_guard.h). Such references were skipped, not followed.
  bool saw_bad_reference() const { return bad_reference_; }

 private:
  Node* cleared_query(SearchScratch<M>& s) const {
    s.query.assign((layout_.node_size + 7) / 8, 0);
    return reinterpret_cast<Node*>(s.query.data());
  }

  bool in_range(int32_t id) const { return static_cast<uint32_t>(id) < static_cast<uint32_t>(n_nodes_); }

  void add_candidate(SearchScratch<M>& s, int32_t id) {
    if (!in_range(id)) {
      bad_reference_ = true;
      return;
    }
    uint64_t& word = s.seen[static_cast<uint32_t>(id) >> 6];
    const uint64_t bit = uint64_t{1} << (id & 63);
    if ((word & bit) == 0) {
      word |= bit;
      s.candidates.push_back(id);
    }
  }

  void push(SearchScratch<M>& s, Dist priority, int32_t id) const {
    s.frontier.emplace_back(priority, id);
    std::push_heap(s.frontier.begin(), s.frontier.end());
  }

  void collect(SearchScratch<M>& s, const Value* q, uint64_t search_k) {
    const size_t seen_words = (static_cast<size_t>(n_nodes_) + 63) / 64;
    if (s.seen.size() < seen_words) s.seen.resize(seen_words, 0);
    s.candidates.clear();
    s.frontier.clear();
    for (int32_t r : roots_) push(s, M::pq_initial(), r);
    const int32_t K = layout_.max_bucket;
    uint64_t collected = 0;  // counts duplicates, as Annoy's nns.size() does
    while (collected < search_k && !s.frontier.empty()) {
      std::pop_heap(s.frontier.begin(), s.frontier.end());
      const Entry top = s.frontier.back();
      s.frontier.pop_back();
      const Node* nd = node(top.second);
      const int32_t n = nd->n_descendants;
      if (n == 1 && top.second < n_items_) {
        add_candidate(s, top.second);
        ++collected;
      } else if (n <= K) {
        const int32_t* ids = children(nd);
        for (int32_t j = 0; j < n; ++j) add_candidate(s, ids[j]);
        collected += static_cast<uint64_t>(n > 0 ? n : 0);
      } else {
        const int32_t* c = children(nd);
        // Load checked these; a file rewritten in place since may hold anything (one compare each).
        if (!in_range(c[0]) || !in_range(c[1]) || !M::split_is_valid(nd, layout_.value_count)) {
          bad_reference_ = true;
          continue;
        }
        const auto margin = M::margin(nd, q, layout_.value_count);
        // One child keeps this node's priority and is usually popped next: start fetching both.
        prefetch(node(c[0]), prefetch_split_bytes_);
        prefetch(node(c[1]), prefetch_split_bytes_);
        push(s, M::pq_distance(top.first, margin, 1), c[1]);
        push(s, M::pq_distance(top.first, margin, 0), c[0]);
      }
    }
  }

  size_t rank(SearchScratch<M>& s, const Node* query, size_t k, int32_t* ids, float* distances) const {
    s.best.clear();
    const size_t n_candidates = s.candidates.size();
    constexpr size_t kAhead = 6;  // candidates fetched ahead: enough to cover DRAM latency
    for (size_t c = 0; c < n_candidates && c < kAhead; ++c) prefetch(node(s.candidates[c]), layout_.node_size);
    for (size_t c = 0; c < n_candidates; ++c) {
      if (c + kAhead < n_candidates) prefetch(node(s.candidates[c + kAhead]), layout_.node_size);
      const int32_t id = s.candidates[c];
      s.seen[static_cast<uint32_t>(id) >> 6] = 0;  // leave the bitset clear for the next search
      const Node* item = node(id);
      if (item->n_descendants != 1) continue;  // Annoy #284: bucket entries that are not items
      const Entry e(distance(s, query, item, k), id);
      if (s.best.size() < k) {
        s.best.push_back(e);
        std::push_heap(s.best.begin(), s.best.end());
      } else if (e < s.best.front()) {
        std::pop_heap(s.best.begin(), s.best.end());
        s.best.back() = e;
        std::push_heap(s.best.begin(), s.best.end());
      }
    }
    std::sort_heap(s.best.begin(), s.best.end());
    for (size_t i = 0; i < s.best.size(); ++i) {
      ids[i] = s.best[i].second;
      distances[i] = M::normalized_distance(s.best[i].first);
    }
    return s.best.size();
  }

  // Once k results are held, a candidate only matters if it beats the k-th: where the metric allows,
  // its distance may stop early (returning something larger) without changing any result.
  Dist distance(const SearchScratch<M>& s, const Node* query, const Node* item, size_t k) const {
    if constexpr (M::kHasBoundedDistance) {
      if (s.best.size() == k) return M::distance_bounded(query, item, layout_.value_count, s.best.front().first);
    }
    return M::distance(query, item, layout_.value_count);
  }

  static const int32_t* children(const Node* n) {
    return reinterpret_cast<const int32_t*>(reinterpret_cast<const uint8_t*>(n) + M::kChildrenOffset);
  }

  static void prefetch(const void* p, size_t bytes) {
    const char* c = static_cast<const char*>(p);
    for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off);
  }

  const uint8_t* nodes_;
  const NodeLayout& layout_;
  int32_t n_items_;
  int32_t n_nodes_;
  const std::vector<int32_t>& roots_;
  const size_t prefetch_split_bytes_;
  bool bad_reference_ = false;
};

}  // namespace canopy
