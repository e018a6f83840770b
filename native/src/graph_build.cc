#include "graph_build.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "error.h"

namespace canopy {

GraphBuildOptions GraphBuildOptions::resolved(int dim) const {
  GraphBuildOptions o = *this;
  if (o.width == 0) {  // resolving again keeps the choice
    o.choose_width = true;
    o.width = kGraphMaxChosenWidth;
  }
  // 48 = 32 + 32 / 2: the list length of the fixed width 32 built before widths were chosen, so
  // choosing costs no longer refinement.
  if (o.candidates == 0) o.candidates = o.choose_width ? kGraphMaxChosenWidth : o.width + o.width / 2;
  auto bad = [](const std::string& what) { throw Error(ErrorCode::InvalidArgument, "graph build: " + what); };
  if (o.width < kGraphMinWidth || o.width > kGraphMaxWidth || o.width % kGraphRowAlignment != 0) {
    bad("width must be a multiple of " + std::to_string(kGraphRowAlignment) + " in " + std::to_string(kGraphMinWidth) + ".." +
        std::to_string(kGraphMaxWidth) + ", got " + std::to_string(o.width));
  }
  if (o.candidates < o.width || o.candidates > 4 * kGraphMaxWidth) {
    bad("candidates must be in width.." + std::to_string(4 * kGraphMaxWidth) + ", got " + std::to_string(o.candidates));
  }
  if (o.iterations < 0 || o.iterations > 100) bad("iterations must be in 0..100, got " + std::to_string(o.iterations));
  if (!(o.prune_alpha >= 1.0f && o.prune_alpha <= 2.0f)) bad("prune_alpha must be in 1..2, got " + std::to_string(o.prune_alpha));
  if (o.seed_trees < 1) bad("seed_trees must be >= 1, got " + std::to_string(o.seed_trees));
  if (o.n_threads < 1) bad("n_threads must be >= 1, got " + std::to_string(o.n_threads));
  return o;
}

namespace {

// Runs body(begin, end) over [0, n) split into n_threads contiguous ranges.
template <class F>
void parallel_for(int n_threads, size_t n, F body) {
  if (n_threads == 1 || n < 1024) {
    body(size_t{0}, n);
    return;
  }
  std::vector<std::thread> threads;
  const size_t step = (n + static_cast<size_t>(n_threads) - 1) / static_cast<size_t>(n_threads);
  for (size_t begin = 0; begin < n; begin += step) threads.emplace_back(body, begin, std::min(n, begin + step));
  for (auto& t : threads) t.join();
}

struct Neighbour {
  float distance;
  int32_t id;
  uint8_t age;  // kFresh: added this round; kNew: not yet joined; kOld: joined
};
enum : uint8_t { kOld = 0, kNew = 1, kFresh = 2 };

bool closer(const Neighbour& a, const Neighbour& b) {
  return a.distance < b.distance || (a.distance == b.distance && a.id < b.id);
}

// Up to `cap` ids, stored in a fixed slot of a flat array.
struct IdLists {
  std::vector<int32_t> ids;
  std::vector<int32_t> counts;
  int cap = 0;

  IdLists(size_t n, int cap_) : ids(n * static_cast<size_t>(cap_)), counts(n, 0), cap(cap_) {}
  int32_t* of(size_t i) { return ids.data() + i * static_cast<size_t>(cap); }
  bool push(size_t i, int32_t id) {
    if (counts[i] == cap) return false;
    of(i)[counts[i]++] = id;
    return true;
  }
};

template <class M>
class GraphBuilder {
 public:
  using Node = typename M::Node;

  GraphBuilder(const Forest& forest, const GraphBuildOptions& o)
      : forest_(forest), o_(o), n_(forest.n_items()), f_(forest.layout().value_count), L_(o.candidates),
        lists_(static_cast<size_t>(n_) * static_cast<size_t>(L_)), sizes_(static_cast<size_t>(n_), 0), locks_(kLockStripes),
        worst_(static_cast<size_t>(n_)) {
    for (auto& w : worst_) w.store(std::numeric_limits<float>::infinity(), std::memory_order_relaxed);
  }

  Graph build() {
    seed_from_leaves();
    seed_lonely_items();
    order_ = leaf_order();
    const size_t stop_below = static_cast<size_t>(kStopFraction * static_cast<double>(n_) * L_);
    for (int round = 0; round < o_.iterations; ++round) {
      if (descend() < stop_below) break;
    }
    // The strict rule sizes the rows; the relaxed one fills them (kGraphPruneAlpha).
    return prune(o_.choose_width ? strict_width() : o_.width, o_.prune_alpha);
  }

 private:
  // Rounds stop once one adds fewer than this share of all list entries. Each round costs about the
  // same (every list joins its 8 closest unjoined entries), while what it adds shrinks fast: on
  // 100,000 x 100 angular items rounds added 83%, 17%, 6%, 2%, 0.8% of the entries, and graphs
  // stopped after round 3 searched as well as after 6 (recall@10 within 0.002 at equal ef) for
  // half the build time. After round 2 they were ~0.01 worse.
  static constexpr double kStopFraction = 0.08;
  static constexpr size_t kLockStripes = 4096;
  static constexpr int32_t kWidthSampleStep = 16;
  static constexpr int kMinSeeded = 8;

  const Node* node(int32_t i) const {
    return reinterpret_cast<const Node*>(forest_.data() + forest_.layout().node_size * static_cast<size_t>(i));
  }
  bool is_item(int32_t i) const { return i >= 0 && i < n_ && node(i)->n_descendants == 1; }
  float distance(int32_t a, int32_t b) const { return M::distance(node(a), node(b), f_); }
  Neighbour* list(int32_t i) { return lists_.data() + static_cast<size_t>(i) * static_cast<size_t>(L_); }

  // Offers j to i's list (a max-heap by (distance, id) once full). Thread-safe.
  void offer(int32_t i, int32_t j, float d) {
    // The worst entry only improves, so a stale read is safe: it can only send a loser to the lock.
    if (d > worst_[static_cast<size_t>(i)].load(std::memory_order_relaxed)) return;
    // One thread needs no lock: uncontended, the lock and unlock still took ~12% of a build.
    std::unique_lock<std::mutex> lock;
    if (o_.n_threads > 1) lock = std::unique_lock<std::mutex>(locks_[static_cast<size_t>(i) % kLockStripes]);
    if (!listed(i, j)) insert(i, Neighbour{d, j, kFresh});
  }

  bool listed(int32_t i, int32_t j) {
    const Neighbour* l = list(i);
    for (int32_t c = 0; c < sizes_[static_cast<size_t>(i)]; ++c) {
      if (l[c].id == j) return true;
    }
    return false;
  }

  // Adds an entry not listed yet, if it beats the worst of a full list. Caller owns i's list.
  void insert(int32_t i, const Neighbour& cand) {
    Neighbour* l = list(i);
    int32_t& size = sizes_[static_cast<size_t>(i)];
    if (size == L_) {
      if (!closer(cand, l[0])) return;
      std::pop_heap(l, l + size, closer);
      l[size - 1] = cand;
    } else {
      l[size++] = cand;
    }
    std::push_heap(l, l + size, closer);
    if (size == L_) worst_[static_cast<size_t>(i)].store(l[0].distance, std::memory_order_relaxed);
  }

  void offer_pair(int32_t a, int32_t b) {
    const float d = distance(a, b);
    offer(a, b, d);
    offer(b, a, d);
  }

  // Items sharing a leaf are near each other: score them pairwise (a leaf's rows stay in cache).
  void seed_from_leaves() {
    std::vector<std::vector<int32_t>> leaves;
    const size_t trees = std::min(forest_.roots().size(), static_cast<size_t>(o_.seed_trees));
    for (size_t t = 0; t < trees; ++t) collect_leaves(forest_.roots()[t], leaves);
    parallel_for(o_.n_threads, leaves.size(), [&](size_t begin, size_t end) {
      for (size_t b = begin; b < end; ++b) {
        const std::vector<int32_t>& leaf = leaves[b];
        for (size_t x = 0; x < leaf.size(); ++x) {
          for (size_t y = x + 1; y < leaf.size(); ++y) offer_pair(leaf[x], leaf[y]);
        }
      }
    });
  }

  // Items no seeding leaf shared (a tree may keep an item alone): a few random partners, so that
  // NN-descent can reach them.
  void seed_lonely_items() {
    std::vector<int32_t> items;
    for (int32_t i = 0; i < n_; ++i) {
      if (is_item(i)) items.push_back(i);
    }
    if (items.size() < 2) return;
    for (int32_t i : items) {
      Kiss64Random random(Kiss64Random::kDefaultSeed + static_cast<uint64_t>(i));
      for (int tries = 0; sizes_[static_cast<size_t>(i)] < kMinSeeded && tries < 2 * kMinSeeded; ++tries) {
        const int32_t j = items[random.index(items.size())];
        if (j != i) offer_pair(i, j);
      }
    }
  }

  void collect_leaves(int32_t root, std::vector<std::vector<int32_t>>& leaves) const {
    const int32_t K = forest_.layout().max_bucket;
    std::vector<int32_t> stack{root};
    while (!stack.empty()) {
      const int32_t i = stack.back();
      stack.pop_back();
      const Node* nd = node(i);
      const int32_t count = nd->n_descendants;
      const int32_t* c = reinterpret_cast<const int32_t*>(reinterpret_cast<const uint8_t*>(nd) + M::kChildrenOffset);
      if (count == 1 && i < n_) continue;  // a lone item: nothing to pair it with here
      if (count <= K) {
        std::vector<int32_t> leaf;
        for (int32_t j = 0; j < count; ++j) {
          if (is_item(c[j])) leaf.push_back(c[j]);
        }
        if (leaf.size() > 1) leaves.push_back(std::move(leaf));
        continue;
      }
      stack.push_back(c[0]);
      stack.push_back(c[1]);
    }
  }

  // Every id, in the order of the first tree's leaves, then the rest. Item ids carry no locality of
  // their own; items joined or pruned one after another in this order share most of the rows and
  // lists they touch, which then stay in cache. The order of the offers never changes a list.
  std::vector<int32_t> leaf_order() const {
    std::vector<std::vector<int32_t>> leaves;
    if (!forest_.roots().empty()) collect_leaves(forest_.roots()[0], leaves);
    std::vector<uint8_t> placed(static_cast<size_t>(n_), 0);
    std::vector<int32_t> order;
    order.reserve(static_cast<size_t>(n_));
    auto place = [&](int32_t i) {
      if (placed[static_cast<size_t>(i)] == 0) {
        placed[static_cast<size_t>(i)] = 1;
        order.push_back(i);
      }
    };
    for (const std::vector<int32_t>& leaf : leaves) {
      for (int32_t i : leaf) place(i);
    }
    for (int32_t i = 0; i < n_; ++i) place(i);
    return order;
  }

  // One NN-descent round; returns how many list entries it added.
  size_t descend() {
    const int sample = std::max(8, L_ / 6);
    IdLists fresh(static_cast<size_t>(n_), 2 * sample), old(static_cast<size_t>(n_), 2 * sample);
    // Forward: each item's closest not-yet-joined entries (then marked joined) and closest old ones.
    parallel_for(o_.n_threads, static_cast<size_t>(n_), [&](size_t begin, size_t end) {
      std::vector<Neighbour> sorted;
      for (size_t i = begin; i < end; ++i) {
        Neighbour* l = list(static_cast<int32_t>(i));
        sorted.assign(l, l + sizes_[i]);
        std::sort(sorted.begin(), sorted.end(), closer);
        int n_new = 0, n_old = 0;
        for (const Neighbour& e : sorted) {
          if (e.age != kOld && n_new < sample) {
            fresh.push(i, e.id);
            ++n_new;
          } else if (e.age == kOld && n_old < sample) {
            old.push(i, e.id);
            ++n_old;
          }
        }
        for (int32_t c = 0; c < sizes_[i]; ++c) {
          if (l[c].age != kOld && contains(fresh.of(i), n_new, l[c].id)) l[c].age = kOld;
        }
      }
    });
    // Reverse, in item order (deterministic): i joins the lists of the items its list names.
    const std::vector<int32_t> forward_fresh = fresh.counts, forward_old = old.counts;
    for (int32_t i = 0; i < n_; ++i) {
      for (int c = 0; c < forward_fresh[i]; ++c) fresh.push(static_cast<size_t>(fresh.of(i)[c]), i);
      for (int c = 0; c < forward_old[i]; ++c) old.push(static_cast<size_t>(old.of(i)[c]), i);
    }
    // Join: new with new, new with old.
    parallel_for(o_.n_threads, order_.size(), [&](size_t begin, size_t end) {
      std::vector<int32_t> a, b;
      for (size_t at = begin; at < end; ++at) {
        const size_t i = static_cast<size_t>(order_[at]);
        // A reverse entry may repeat a forward one: each id once, and old ones not also new.
        distinct(fresh.of(i), fresh.counts[i], {}, a);
        distinct(old.of(i), old.counts[i], a, b);
        for (int32_t id : a) prefetch_item(id);
        for (int32_t id : b) prefetch_item(id);
        for (size_t x = 0; x < a.size(); ++x) {
          for (size_t y = x + 1; y < a.size(); ++y) offer_pair(a[x], a[y]);
          for (int32_t other : b) offer_pair(a[x], other);
        }
      }
    });
    size_t added = 0;
    for (Neighbour& e : lists_) {
      if (e.age == kFresh) {
        e.age = kNew;
        ++added;
      }
    }
    return added;
  }

  // out = the ids[0..count) not seen before among them nor in `exclude`, in order.
  static void distinct(const int32_t* ids, int count, const std::vector<int32_t>& exclude, std::vector<int32_t>& out) {
    out.clear();
    for (int c = 0; c < count; ++c) {
      if (!contains(out.data(), static_cast<int>(out.size()), ids[c]) &&
          !contains(exclude.data(), static_cast<int>(exclude.size()), ids[c])) {
        out.push_back(ids[c]);
      }
    }
  }

  // A join reads every row it names many times and offers to every list: start the misses together.
  void prefetch_item(int32_t id) const {
    const char* row = reinterpret_cast<const char*>(node(id));
    for (size_t off = 0; off < forest_.layout().node_size; off += 64) __builtin_prefetch(row + off);
    __builtin_prefetch(&worst_[static_cast<size_t>(id)]);
  }

  static bool contains(const int32_t* ids, int count, int32_t id) {
    for (int c = 0; c < count; ++c) {
      if (ids[c] == id) return true;
    }
    return false;
  }

  // Keeps, closest first, up to `width` candidates, each unless a kept neighbour is closer to it
  // than the item is by the factor `alpha` (1: the strict rule); writes `out`.
  int select_diverse(int32_t i, std::vector<Neighbour>& candidates, int32_t* out, int width, float alpha) const {
    std::sort(candidates.begin(), candidates.end(), closer);
    int kept = 0;
    for (const Neighbour& c : candidates) {
      if (kept == width) break;
      if (c.id == i || contains(out, kept, c.id)) continue;
      bool diverse = true;
      for (int r = 0; r < kept && diverse; ++r) diverse = !(alpha * distance(out[r], c.id) < c.distance);
      if (diverse) out[kept++] = c.id;
    }
    for (int r = kept; r < width; ++r) out[r] = kNoNeighbour;
    return kept;
  }

  // chosen_width over the strictly pruned lists of every kWidthSampleStep-th item (before reverse
  // edges): the rule needs their lengths only, and a sample gives them at a small share of a prune.
  int strict_width() {
    Graph sample;
    sample.width = kGraphMaxChosenWidth;
    sample.n_items = (n_ + kWidthSampleStep - 1) / kWidthSampleStep;
    sample.rows.resize(static_cast<size_t>(sample.n_items) * static_cast<size_t>(sample.width));
    std::vector<Neighbour> candidates;
    for (int32_t s = 0; s < sample.n_items; ++s) {
      const int32_t i = s * kWidthSampleStep;
      candidates.assign(list(i), list(i) + sizes_[static_cast<size_t>(i)]);
      select_diverse(i, candidates, sample.rows.data() + static_cast<size_t>(s) * static_cast<size_t>(sample.width), sample.width, 1.0f);
    }
    return chosen_width(sample.view());
  }

  Graph prune(int width, float alpha) {
    Graph g;
    g.n_items = n_;
    g.width = width;
    g.rows.assign(static_cast<size_t>(n_) * static_cast<size_t>(width), kNoNeighbour);
    auto row = [&](int32_t i) { return g.rows.data() + static_cast<size_t>(i) * static_cast<size_t>(width); };
    parallel_for(o_.n_threads, order_.size(), [&](size_t begin, size_t end) {
      std::vector<Neighbour> candidates;
      for (size_t at = begin; at < end; ++at) {
        const size_t i = static_cast<size_t>(order_[at]);
        candidates.assign(list(static_cast<int32_t>(i)), list(static_cast<int32_t>(i)) + sizes_[i]);
        select_diverse(static_cast<int32_t>(i), candidates, row(static_cast<int32_t>(i)), width, alpha);
      }
    });
    // Reverse edges, in item order; each item takes at most `width` of them.
    IdLists reverse(static_cast<size_t>(n_), width);
    for (int32_t i = 0; i < n_; ++i) {
      const int32_t* r = row(i);
      for (int c = 0; c < width && r[c] != kNoNeighbour; ++c) reverse.push(static_cast<size_t>(r[c]), i);
    }
    parallel_for(o_.n_threads, order_.size(), [&](size_t begin, size_t end) {
      std::vector<Neighbour> candidates;
      for (size_t at = begin; at < end; ++at) {
        const size_t i = static_cast<size_t>(order_[at]);
        const int32_t item = static_cast<int32_t>(i);
        candidates.clear();
        const int32_t* kept = row(item);
        for (int c = 0; c < width && kept[c] != kNoNeighbour; ++c) candidates.push_back(Neighbour{distance(item, kept[c]), kept[c], kOld});
        const int32_t* rev = reverse.of(i);
        for (int c = 0; c < reverse.counts[i]; ++c) candidates.push_back(Neighbour{distance(item, rev[c]), rev[c], kOld});
        select_diverse(item, candidates, row(item), width, alpha);
      }
    });
    return g;
  }

  const Forest& forest_;
  const GraphBuildOptions o_;
  const int32_t n_;
  const int f_;
  const int L_;
  std::vector<Neighbour> lists_;  // L_ per item: a max-heap by (distance, id) once full
  std::vector<int32_t> sizes_;
  std::vector<int32_t> order_;  // leaf_order(), once seeded
  std::vector<std::mutex> locks_;
  std::vector<std::atomic<float>> worst_;  // per item: its list's worst distance once full, else +inf
};

}  // namespace

int chosen_width(const GraphView& pruned) {
  std::vector<size_t> rows_of_length(static_cast<size_t>(pruned.width) + 1, 0);
  for (int32_t i = 0; i < pruned.n_items; ++i) {
    const int32_t* row = pruned.row(i);
    int length = 0;
    while (length < pruned.width && row[length] != kNoNeighbour) ++length;
    ++rows_of_length[static_cast<size_t>(length)];
  }
  const double wanted = kGraphWidthCoverage * static_cast<double>(pruned.n_items);
  size_t whole = 0;
  for (int length = 0; length <= pruned.width; ++length) {
    whole += rows_of_length[static_cast<size_t>(length)];
    if (static_cast<double>(whole) >= wanted) {
      return std::max(kGraphMinWidth, (length + kGraphRowAlignment - 1) / kGraphRowAlignment * kGraphRowAlignment);
    }
  }
  return pruned.width;
}

Graph build_graph(const Forest& forest, const GraphBuildOptions& options) {
  const NodeLayout& layout = forest.layout();
  if (layout.metric == MetricKind::Dot || layout.metric == MetricKind::Hamming) {
    throw Error(ErrorCode::InvalidArgument, std::string("a neighbour graph needs a metric distance; ") +
                                                metric_name(layout.metric) + " is not supported (angular, euclidean, manhattan are)");
  }
  const GraphBuildOptions o = options.resolved(layout.dim);
  return with_metric(layout.metric, [&](auto tag) -> Graph {
    using M = typename decltype(tag)::type;
    if constexpr (std::is_same_v<typename M::Distance, float>) {
      return GraphBuilder<M>(forest, o).build();
    } else {
      return Graph{};  // not reached: hamming refused above
    }
  });
}

}  // namespace canopy
