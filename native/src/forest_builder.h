// Builds Annoy's forest over the items of a NodeBuffer, on several threads at once.
//
// Each thread grows whole trees in a private buffer (no locks while splitting), numbering its nodes
// as if the tree started right after the items, then appends the tree under an exclusive lock,
// shifting those numbers to where the tree lands. Items are read under a shared lock, so the buffer
// can grow (and move) between trees. With one thread the node numbering, the random draws and the
// arithmetic are Annoy's, so a seeded single-threaded build writes Annoy's bytes (hamming: except
// the unused bytes of split nodes, which Annoy leaves uninitialised and this writes as zero).
// With several threads, thread t is seeded seed + t and builds floor((n_trees + t) / threads) trees,
// as in Annoy; node numbers then depend on which tree lands first, as they do in Annoy.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "forest.h"
#include "kiss_random.h"
#include "metric.h"
#include "node_buffer.h"

namespace canopy {

template <class M>
class ForestBuilder {
 public:
  using Node = typename M::Node;

  ForestBuilder(NodeBuffer& buffer, const NodeLayout& layout, int32_t n_items)
      : buffer_(buffer), layout_(layout), n_items_(n_items), n_nodes_(n_items) {}

  // Builds `n_trees` trees (-1: until the forest has 2x as many nodes as items), then appends the
  // root copies. `trees_built` counts finished trees as they land. Returns the roots.
  std::vector<int32_t> build(int n_trees, int n_threads, uint64_t seed, std::atomic<int>& trees_built) {
    if (M::kKind == MetricKind::Dot) Dot::preprocess(&dot_node_at, this, n_items_, layout_.value_count);
    std::vector<std::thread> threads;
    std::exception_ptr failure;
    std::mutex failure_mu;
    for (int t = 0; t < n_threads; ++t) {
      const int quota = n_trees == -1 ? -1 : (n_trees + t) / n_threads;
      threads.emplace_back([this, t, quota, seed, &trees_built, &failure, &failure_mu] {
        try {
          build_trees(quota, seed + static_cast<uint64_t>(t), trees_built);
        } catch (...) {
          std::lock_guard<std::mutex> lock(failure_mu);
          if (!failure) failure = std::current_exception();
          stop_.store(true);
        }
      });
    }
    for (auto& th : threads) th.join();
    if (failure) std::rethrow_exception(failure);
    // Root copies at the end let a reader find the roots without walking the file.
    buffer_.reserve(static_cast<size_t>(n_nodes_) + roots_.size());
    for (int32_t r : roots_) {
      std::memcpy(node_bytes(n_nodes_), node_bytes(r), layout_.node_size);
      ++n_nodes_;
    }
    // A file must end at the last node; heap memory keeps its slack (as Annoy), which spares a copy.
    if (buffer_.is_on_disk()) buffer_.resize_exact(static_cast<size_t>(n_nodes_));
    return roots_;
  }

  int32_t n_nodes() const { return n_nodes_; }

 private:
  // A tree under construction: nodes in post-order; node j is numbered n_items + j until placed.
  struct Tree {
    std::vector<uint8_t> bytes;
    int32_t count = 0;
  };

  uint8_t* node_bytes(int32_t i) { return buffer_.data() + layout_.node_size * static_cast<size_t>(i); }
  Node* item(int32_t i) { return reinterpret_cast<Node*>(node_bytes(i)); }

  static typename Dot::Node* dot_node_at(void* self, int32_t i) {
    return reinterpret_cast<typename Dot::Node*>(static_cast<ForestBuilder*>(self)->node_bytes(i));
  }

  void build_trees(int quota, uint64_t seed, std::atomic<int>& trees_built) {
    Kiss64Random random(seed);
    int built = 0;
    Tree tree;
    std::vector<int32_t> indices;
    while (!stop_.load()) {
      if (quota == -1) {
        std::shared_lock<std::shared_mutex> lock(mu_);
        if (n_nodes_ >= 2 * n_items_) break;
      } else if (built >= quota) {
        break;
      }
      tree.bytes.clear();
      tree.count = 0;
      int32_t root;
      {
        std::shared_lock<std::shared_mutex> lock(mu_);
        indices.clear();
        for (int32_t i = 0; i < n_items_; ++i) {
          if (item(i)->n_descendants >= 1) indices.push_back(i);  // skip holes (Annoy #223)
        }
        root = make_tree(tree, indices, true, random);
      }
      append(tree, root);
      ++built;
      trees_built.fetch_add(1);
    }
  }

  int32_t new_node(Tree& tree, const void* src) {
    const size_t at = tree.bytes.size();
    tree.bytes.resize(at + layout_.node_size);
    std::memcpy(tree.bytes.data() + at, src, layout_.node_size);
    return n_items_ + tree.count++;
  }

  int32_t make_tree(Tree& tree, const std::vector<int32_t>& indices, bool is_root, Kiss64Random& random) {
    const size_t size = indices.size();
    const size_t K = static_cast<size_t>(layout_.max_bucket);
    if (size == 1 && !is_root) return indices[0];
    std::vector<uint64_t> scratch(3 * ((layout_.node_size + 7) / 8), 0);
    Node* m = reinterpret_cast<Node*>(scratch.data());
    if (size <= K && (!is_root || static_cast<size_t>(n_items_) <= K || size == 1)) {
      m->n_descendants = is_root ? n_items_ : static_cast<int32_t>(size);
      if (size > 0) {
        std::memcpy(reinterpret_cast<uint8_t*>(m) + M::kChildrenOffset, indices.data(), size * sizeof(int32_t));
      }
      return new_node(tree, m);
    }
    const size_t words = (layout_.node_size + 7) / 8;
    Node* p = reinterpret_cast<Node*>(scratch.data() + words);
    Node* q = reinterpret_cast<Node*>(scratch.data() + 2 * words);
    std::vector<const Node*> nodes;
    nodes.reserve(size);
    for (int32_t j : indices) nodes.push_back(item(j));
    std::vector<int32_t> sides[2];
    const int f = layout_.value_count;
    for (int attempt = 0; attempt < 3; ++attempt) {
      M::create_split(nodes, f, p, q, random, m);
      sides[0].resize(size);
      sides[1].resize(size);
      size_t count[2] = {0, 0};
      assign_sides(m, nodes, indices, random, sides, count);
      sides[0].resize(count[0]);
      sides[1].resize(count[1]);
      if (metric_detail::split_imbalance(count[0], count[1]) < 0.95) break;
    }
    // No useful plane: a zero normal and random sides (Annoy keeps any stale offset).
    while (metric_detail::split_imbalance(sides[0].size(), sides[1].size()) > 0.99) {
      sides[0].clear();
      sides[1].clear();
      std::memset(M::v(m), 0, sizeof(typename M::Value) * static_cast<size_t>(f));
      for (int32_t j : indices) sides[random.flip()].push_back(j);
    }
    const int flip = sides[0].size() > sides[1].size() ? 1 : 0;
    m->n_descendants = is_root ? n_items_ : static_cast<int32_t>(size);
    int32_t child[2];
    for (int side = 0; side < 2; ++side) {  // smaller side first, as Annoy (locality)
      child[side ^ flip] = make_tree(tree, sides[side ^ flip], false, random);
    }
    int32_t* c = reinterpret_cast<int32_t*>(reinterpret_cast<uint8_t*>(m) + M::kChildrenOffset);
    c[0] = child[0];
    c[1] = child[1];
    return new_node(tree, m);
  }

  // Sends each item to the side of split m (Annoy's side(), random on an exact tie, items in order).
  // Both sides are written at every step and one cursor advanced: no branch on a coin flip.
  void assign_sides(const Node* m, const std::vector<const Node*>& nodes, const std::vector<int32_t>& indices,
                    Kiss64Random& random, std::vector<int32_t>* sides, size_t* count) const {
    const int f = layout_.value_count;
    const size_t size = nodes.size();
    auto place = [&](size_t i, bool side) {
      sides[0][count[0]] = indices[i];
      sides[1][count[1]] = indices[i];
      ++count[side ? 1 : 0];
    };
    if constexpr (M::kBatchMargins) {
      constexpr size_t kChunk = 64;
      const float* values[kChunk];
      float dots[kChunk];
      for (size_t begin = 0; begin < size; begin += kChunk) {
        const size_t n = size - begin < kChunk ? size - begin : kChunk;
        for (size_t j = 0; j < n; ++j) values[j] = M::v(nodes[begin + j]);
        simd::dot_many(M::v(m), values, static_cast<int>(n), f, dots);
        for (size_t j = 0; j < n; ++j) {
          const float margin = M::margin_from_dot(m, dots[j]);
          place(begin + j, margin != 0 ? margin > 0 : random.flip() != 0);
        }
      }
    } else {
      for (size_t i = 0; i < size; ++i) place(i, M::side(m, nodes[i], f, random));
    }
  }

  // Places a finished tree after the current nodes and renumbers its internal references.
  void append(Tree& tree, int32_t root) {
    std::unique_lock<std::shared_mutex> lock(mu_);
    const int32_t base = n_nodes_;
    const int32_t shift = base - n_items_;
    buffer_.reserve(static_cast<size_t>(base) + static_cast<size_t>(tree.count));
    uint8_t* dst = node_bytes(base);
    std::memcpy(dst, tree.bytes.data(), tree.bytes.size());
    for (int32_t j = 0; j < tree.count; ++j) {
      uint8_t* nb = dst + layout_.node_size * static_cast<size_t>(j);
      if (reinterpret_cast<const int32_t*>(nb)[0] <= layout_.max_bucket) continue;  // bucket: item ids only
      int32_t* c = reinterpret_cast<int32_t*>(nb + M::kChildrenOffset);
      for (int side = 0; side < 2; ++side) {
        if (c[side] >= n_items_) c[side] += shift;
      }
    }
    n_nodes_ = base + tree.count;
    roots_.push_back(root >= n_items_ ? root + shift : root);
  }

  NodeBuffer& buffer_;
  const NodeLayout& layout_;
  const int32_t n_items_;
  int32_t n_nodes_;  // guarded by mu_
  std::vector<int32_t> roots_;  // guarded by mu_
  std::shared_mutex mu_;
  std::atomic<bool> stop_{false};
};

}  // namespace canopy
