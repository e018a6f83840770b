// The search through codes (see codes.h): walk compact splits, estimate on 1-bit codes (if the index
// uses that step), score the likely ones on 8-bit codes, re-rank the best `rerank` exactly.
// Allocation-free once a thread's scratch has grown to the largest forest it searched.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "code_kernels.h"
#include "code_sections.h"
#include "forest.h"
#include "scalar_query.h"
#include "search.h"
#include "walk_frontier.h"

namespace canopy {

struct BinaryEstimate {
  float estimate;
  float lower;  // a lower bound on the distance, with high probability
  int32_t id;
  bool operator<(const BinaryEstimate& o) const { return estimate < o.estimate; }
};

// Entries the walk pops and expands together (see CodedSearch::walk()).
constexpr size_t kCodedWalkBatch = 4;

template <class M>
struct CodedScratch {
  using Entry = std::pair<float, int32_t>;
  WalkFrontier<2 * kCodedWalkBatch> frontier;  // packed (priority, walk key): see CodedSearch::pack
  std::vector<int32_t> candidates;  // unique candidate items in discovery order
  std::vector<uint64_t> seen;       // bit per forest node, all clear between searches
  std::vector<BinaryEstimate> estimates;  // 1-bit estimates of every candidate
  std::vector<Entry> scored;              // (8-bit estimate, then exact distance, item)
  std::vector<Entry> pending;             // (first line's partial estimate, item): see score_bounded
  std::vector<float> prepared;      // the query as the codes see it (angular: unit length)
  std::vector<float> rotated;       // its rotation, then the vector the binary codes are scored with
  std::vector<uint64_t> planes;     // 4 bit planes of that vector quantized to 4 bits
  ScalarQuery<M> scalar;            // the query on the 8-bit codes
  std::vector<float> item_query;    // search_item's vector

  // Not inlined, for the reason SearchScratch::local() gives.
  __attribute__((noinline)) static CodedScratch& local() {
    static thread_local CodedScratch scratch;
    return scratch;
  }
};

template <class M>
class CodedSearch {
 public:
  using Entry = std::pair<float, int32_t>;
  // The 1-bit step first rescores this many of its best on 8-bit codes, then every other candidate
  // whose distance may still be below the rerank-th best 8-bit estimate so far.
  static constexpr size_t kFirstRescoreMin = 64;
  static constexpr size_t kFirstRescorePerRerank = 4;
  // How far below its 1-bit estimate a candidate's distance may be, in units of its error term, and
  // still earn an 8-bit rescore. RaBitQ's bound uses 1.9 (the estimate is within it with very high
  // probability), but a candidate only has to beat the rerank-th best 8-bit estimate. At search_k
  // 3000, 1.5 rescored 781 of 1,529 candidates where 1.9 rescored 900 (100k x 100 angular) and 1,371
  // of 1,691 where 1.9 rescored 1,430 (1M x 128 euclidean), at the same recall@10; 1.2 rescored
  // fewer still but lost 0.015 of recall at 40 dimensions (native/test/codes_test.cc).
  static constexpr float kRescoreConfidence = 1.5f;

  // binary_step: score candidates on 1-bit codes before the 8-bit ones (only with binary codes; see
  // CodedForest::load for when it pays).
  CodedSearch(const Forest& forest, const CodeViews& views, bool binary_step)
      : forest_(forest), views_(views), layout_(forest.layout()), binary_step_(binary_step && views.centroid != nullptr) {}

  size_t run(const float* query, size_t k, int64_t search_k, size_t rerank, int32_t* ids, float* distances) {
    if (k == 0) return 0;
    CodedScratch<M>& s = CodedScratch<M>::local();
    if (search_k <= 0) search_k = static_cast<int64_t>(k) * views_.n_roots;
    walk(s, query, static_cast<uint64_t>(search_k));
    prepare(s, query);
    s.scored.clear();
    filter_ = {};
    if (binary_step_ && s.candidates.size() > rerank) {
      score_binary(s);
      filter_ = rescore_likely(s, rerank);
    } else if constexpr (ScalarQuery<M>::kSumOfTerms) {
      score_bounded(s, rerank);
    } else {
      for (int32_t id : s.candidates) s.scored.emplace_back(0.0f, id);
      score_scalar(s, 0);
    }
    keep_best(s.scored, rerank);
    return rank_exact(s, query, k, ids, distances);
  }

  bool saw_bad_reference() const { return bad_reference_; }
  // The 1-bit filter in the last run: candidates its lower bound was tested on (all but the best
  // few, rescored anyway), and how many of those passed to the 8-bit step.
  struct FilterCounts {
    size_t tested = 0;
    size_t passed = 0;
  };
  FilterCounts filter_counts() const { return filter_; }

 private:
  // ---- the walk: Annoy's traversal over compact split records ----

  void walk(CodedScratch<M>& s, const float* query, uint64_t search_k) {
    const size_t seen_words = (static_cast<size_t>(forest_.n_nodes()) + 63) / 64;
    if (s.seen.size() < seen_words) s.seen.resize(seen_words, 0);
    s.candidates.clear();
    s.frontier.clear();
    for (int32_t i = 0; i < views_.n_roots; ++i) s.frontier.push(pack(M::pq_initial(), walk_key(views_.roots[i])));
    uint64_t collected = 0;  // with duplicates, as the exact search counts
    // Popping kCodedWalkBatch entries and expanding them together fetches their records in parallel
    // instead of one dependent miss after another. It may expand up to kCodedWalkBatch - 1 nodes that
    // strict best-first order would have left for later, which costs a few splits, never candidates.
    uint64_t packed[kCodedWalkBatch];
    Entry batch[kCodedWalkBatch];
    while (collected < search_k && !s.frontier.empty()) {
      const size_t taken = s.frontier.take(packed, kCodedWalkBatch);
      for (size_t b = 0; b < taken; ++b) {
        batch[b] = unpack(packed[b]);
        prefetch_reference(reference_of(batch[b].second));
      }
      for (size_t b = 0; b < taken && collected < search_k; ++b) expand(s, query, batch[b], &collected);
    }
  }

  // A split adds both children to the frontier; a leaf adds its items to the candidates.
  void expand(CodedScratch<M>& s, const float* query, const Entry& top, uint64_t* collected) {
    if (top.second < 0) {
      const SplitRecord* split = views_.split(-top.second - 1);
      const float margin = split->offset + split->scale * code_kernels::dot_s8_f32(record_payload<SplitRecord, int8_t>(split), query, layout_.dim);
      prefetch_reference(split->children[0]);
      prefetch_reference(split->children[1]);
      s.frontier.add_fresh(pack(M::pq_distance(top.first, margin, 1), walk_key(split->children[1])));
      s.frontier.add_fresh(pack(M::pq_distance(top.first, margin, 0), walk_key(split->children[0])));
      return;
    }
    const int32_t node = top.second;
    const int32_t* header = forest_node(node);
    const int32_t n = header[0];
    if (n == 1 && node < forest_.n_items()) {
      add_candidate(s, node);
      ++*collected;
    } else if (n >= 0 && n <= layout_.max_bucket) {
      const int32_t* ids = reinterpret_cast<const int32_t*>(reinterpret_cast<const uint8_t*>(header) + M::kChildrenOffset);
      for (int32_t j = 0; j < n; ++j) add_candidate(s, ids[j]);
      *collected += static_cast<uint64_t>(n);
    } else {
      bad_reference_ = true;  // load checked it: the forest was rewritten in place since
    }
  }

  // The frontier's key for a reference: a leaf's forest node (>= 0), or -1 - the split's index. Among
  // equal priorities the larger key pops first, so leaves go before splits: splits with a zero normal
  // (Annoy's fallback for a split it could not balance) give their children the same priority, and
  // with splits first the walk would expand every such subtree before collecting anything.
  static int32_t walk_key(int32_t reference) { return reference >= 0 ? -1 - reference : leaf_node(reference); }
  static int32_t reference_of(int32_t key) { return key < 0 ? -1 - key : leaf_reference(key); }

  // A frontier entry as one integer whose order is (priority, key)'s, so the heap compares once.
  // Priorities are never NaN (margins of a finite query); -0 sorts below +0, which only breaks a tie.
  static uint64_t pack(float priority, int32_t key) {
    uint32_t bits;
    std::memcpy(&bits, &priority, sizeof bits);
    bits = (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
    return (uint64_t{bits} << 32) | (static_cast<uint32_t>(key) ^ 0x80000000u);
  }
  static Entry unpack(uint64_t packed) {
    uint32_t bits = static_cast<uint32_t>(packed >> 32);
    bits = (bits & 0x80000000u) != 0 ? bits & 0x7fffffffu : ~bits;
    float priority;
    std::memcpy(&priority, &bits, sizeof priority);
    return Entry(priority, static_cast<int32_t>(static_cast<uint32_t>(packed) ^ 0x80000000u));
  }

  const int32_t* forest_node(int32_t node) const {
    return reinterpret_cast<const int32_t*>(forest_.data() + layout_.node_size * static_cast<size_t>(node));
  }

  void prefetch_reference(int32_t reference) const {
    if (reference >= 0) {
      prefetch_lines(views_.split(reference), views_.split_record_size);
    } else {
      __builtin_prefetch(forest_node(leaf_node(reference)));
    }
  }

  // Only items have codes; anything else a bucket names is skipped, as the exact search skips it.
  void add_candidate(CodedScratch<M>& s, int32_t id) {
    if (static_cast<uint32_t>(id) >= static_cast<uint32_t>(forest_.n_items())) {
      if (static_cast<uint32_t>(id) >= static_cast<uint32_t>(forest_.n_nodes())) bad_reference_ = true;
      return;
    }
    uint64_t& word = s.seen[static_cast<uint32_t>(id) >> 6];
    const uint64_t bit = uint64_t{1} << (id & 63);
    if ((word & bit) == 0) {
      word |= bit;
      s.candidates.push_back(id);
      // Its 1-bit record is read after the walk: fetched now, the walk's own misses hide it.
      if (binary_step_) __builtin_prefetch(views_.binary(id));
    }
  }

  // ---- estimates ----

  void prepare(CodedScratch<M>& s, const float* query) const {
    const int dim = layout_.dim;
    s.prepared.assign(query, query + dim);
    if constexpr (M::kKind == MetricKind::Angular) scale_to_unit_length(s.prepared.data(), dim);
    s.scalar.prepare(views_, s.prepared.data(), dim);
    for (int32_t id : s.candidates) s.seen[static_cast<uint32_t>(id) >> 6] = 0;  // clear for the next search
  }

  static float finite_or_max(float e) { return e == e ? e : std::numeric_limits<float>::infinity(); }

  // 1-bit estimates for every candidate (code_sections.h: BinaryRecord). The query vector v is
  // quantized to 4 bits per coordinate, so each item's sum over its set bits is 4 masked popcounts.
  void score_binary(CodedScratch<M>& s) const {
    const Rotation& rotation = *views_.rotation;
    const int padded = rotation.padded();
    const int words = views_.words;
    s.rotated.resize(static_cast<size_t>(padded));
    rotation.apply(s.prepared.data(), s.rotated.data());
    float query_constant = 0;
    float* v = s.rotated.data();
    if constexpr (M::kKind == MetricKind::Dot) {
      for (int j = 0; j < padded; ++j) query_constant -= views_.centroid[j] * v[j];
    } else {
      for (int j = 0; j < padded; ++j) {
        v[j] -= views_.centroid[j];
        query_constant += v[j] * v[j];
      }
    }
    const auto [low, high] = std::minmax_element(v, v + padded);
    const float base = *low;
    const float step = *high > *low ? (*high - *low) / 15.0f : 1.0f;
    s.planes.assign(4 * static_cast<size_t>(words), 0);
    uint32_t level_sum = 0;
    for (int j = 0; j < padded; ++j) {
      const uint32_t level = static_cast<uint32_t>(std::min(15.0f, std::max(0.0f, std::nearbyint((v[j] - base) / step))));
      level_sum += level;
      for (int p = 0; p < 4; ++p) s.planes[p * words + j / 64] |= static_cast<uint64_t>((level >> p) & 1) << (j % 64);
    }
    const float total = step * static_cast<float>(level_sum) + base * static_cast<float>(padded);
    float v_norm = 0;
    for (int j = 0; j < padded; ++j) v_norm += v[j] * v[j];
    const float error_scale = kRescoreConfidence * std::sqrt(v_norm);
    s.estimates.clear();
    constexpr size_t kAhead = 8;  // records fetched ahead: covers DRAM latency
    const size_t n = s.candidates.size();
    for (size_t c = 0; c < n && c < kAhead; ++c) __builtin_prefetch(views_.binary(s.candidates[c]));
    for (size_t c = 0; c < n; ++c) {
      if (c + kAhead < n) __builtin_prefetch(views_.binary(s.candidates[c + kAhead]));
      const int32_t id = s.candidates[c];
      const BinaryRecord* r = views_.binary(id);
      const code_kernels::MaskedSum m = code_kernels::masked_sum4(record_payload<BinaryRecord, uint64_t>(r), s.planes.data(), words);
      const float set = step * static_cast<float>(m.weighted) + base * static_cast<float>(m.ones);
      const float estimate = finite_or_max(query_constant + r->add + r->scale * (2.0f * set - total));
      s.estimates.push_back({estimate, estimate - error_scale * r->error, id});
    }
  }

  // The best 1-bit estimates on 8-bit codes first; their rerank-th best is the bar every other
  // candidate's lower bound must pass to be rescored too.
  FilterCounts rescore_likely(CodedScratch<M>& s, size_t rerank) const {
    const size_t first = std::min(s.estimates.size(), std::max(kFirstRescoreMin, kFirstRescorePerRerank * rerank));
    std::nth_element(s.estimates.begin(), s.estimates.begin() + static_cast<std::ptrdiff_t>(first), s.estimates.end());
    for (size_t i = 0; i < first; ++i) s.scored.emplace_back(0.0f, s.estimates[i].id);
    score_scalar(s, 0);
    if (s.scored.size() <= rerank) return {};
    keep_best(s.scored, rerank);
    float bar = s.scored.front().first;
    for (const Entry& e : s.scored) bar = std::max(bar, e.first);
    const size_t before = s.scored.size();
    for (size_t i = first; i < s.estimates.size(); ++i) {
      if (s.estimates[i].lower < bar) s.scored.emplace_back(0.0f, s.estimates[i].id);
    }
    score_scalar(s, before);
    return {s.estimates.size() - first, s.scored.size() - before};
  }

  // 8-bit estimates (scalar_query.h) for s.scored[from..].
  void score_scalar(CodedScratch<M>& s, size_t from) const {
    const size_t n = s.scored.size();
    constexpr size_t kAhead = 8;  // records (2-3 lines each) fetched ahead
    for (size_t c = from; c < n && c < from + kAhead; ++c) s.scalar.prefetch(s.scored[c].second);
    for (size_t c = from; c < n; ++c) {
      if (c + kAhead < n) s.scalar.prefetch(s.scored[c + kAhead].second);
      s.scored[c].first = s.scalar.estimate(s.scored[c].second);
    }
  }

  // Every candidate on 8-bit codes, keeping the best `rerank` in s.scored (a max-heap on the
  // estimate). A record's first cache line is scored first; its terms are a lower bound of the whole
  // estimate, so a candidate whose first line already reaches the rerank-th best estimate so far
  // cannot enter the best and its other lines are never fetched. On 1M x 128 mixture candidates that
  // skips the second line of over half of them. Lines are fetched ahead: first lines kAhead
  // candidates ahead, the rest of a record as soon as its first line passes, read kAhead candidates
  // later (pending), so no read waits on one just asked for.
  void score_bounded(CodedScratch<M>& s, size_t rerank) const {
    constexpr size_t kAhead = 8;
    const int dim = layout_.dim;
    const size_t n = s.candidates.size();
    auto first_line_dims = [&](const uint8_t* codes) {
      return std::min(dim, static_cast<int>(64 - reinterpret_cast<uintptr_t>(codes) % 64));
    };
    auto bar = [&] { return s.scored.size() < rerank ? std::numeric_limits<float>::infinity() : s.scored.front().first; };
    auto offer = [&](float estimate, int32_t id) {
      if (!(estimate < bar())) return;
      if (s.scored.size() == rerank) {
        std::pop_heap(s.scored.begin(), s.scored.end());
        s.scored.pop_back();
      }
      s.scored.emplace_back(estimate, id);
      std::push_heap(s.scored.begin(), s.scored.end());
    };
    s.pending.clear();
    size_t done = 0;  // pending entries finished
    for (size_t c = 0; c < n && c < kAhead; ++c) __builtin_prefetch(views_.scalar(s.candidates[c]));
    for (size_t c = 0; c < n + kAhead; ++c) {
      if (c < n) {
        if (c + kAhead < n) __builtin_prefetch(views_.scalar(s.candidates[c + kAhead]));
        const int32_t id = s.candidates[c];
        const uint8_t* codes = views_.scalar(id);
        const int head = first_line_dims(codes);
        const float partial = finite_or_max(s.scalar.partial(codes, 0, head));
        if (head == dim) {
          offer(partial, id);
        } else if (partial < bar()) {
          prefetch_lines(codes + head, static_cast<size_t>(dim - head));
          s.pending.emplace_back(partial, id);
        }
      }
      for (; done < s.pending.size() && (c >= n || s.pending.size() - done > kAhead); ++done) {
        const auto [partial, id] = s.pending[done];
        if (!(partial < bar())) continue;
        const uint8_t* codes = views_.scalar(id);
        offer(finite_or_max(partial + s.scalar.partial(codes, first_line_dims(codes), dim)), id);
      }
    }
  }

  static void keep_best(std::vector<Entry>& scored, size_t keep) {
    if (scored.size() <= keep) return;
    std::nth_element(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(keep), scored.end());
    scored.resize(keep);
  }

  // ---- exact distances for the last few, from the forest's float rows ----

  size_t rank_exact(CodedScratch<M>& s, const float* query, size_t k, int32_t* ids, float* distances) const {
    using Node = typename M::Node;
    ForestSearch<M> exact(forest_.data(), layout_, forest_.n_items(), forest_.n_nodes(), forest_.roots());
    const Node* q = exact.query_from_input(SearchScratch<M>::local(), query);
    size_t kept = 0;
    for (const Entry& e : s.scored) {
      const Node* item = exact.node(e.second);
      if (item->n_descendants != 1) continue;  // a hole
      s.scored[kept++] = Entry(M::distance(q, item, layout_.value_count), e.second);
    }
    s.scored.resize(kept);
    const size_t found = std::min(k, kept);
    std::partial_sort(s.scored.begin(), s.scored.begin() + static_cast<std::ptrdiff_t>(found), s.scored.end());
    for (size_t i = 0; i < found; ++i) {
      ids[i] = s.scored[i].second;
      distances[i] = M::normalized_distance(s.scored[i].first);
    }
    return found;
  }

  const Forest& forest_;
  const CodeViews& views_;
  const NodeLayout& layout_;
  const bool binary_step_;
  bool bad_reference_ = false;
  FilterCounts filter_;
};

}  // namespace canopy
