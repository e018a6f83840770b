// A built forest: the node array (Annoy's file layout) plus its roots, immutable and shared.
//
// Layout (docs/annoy-format.md, "The file"): nodes 0..n_items-1 are items (n_descendants == 1) or
// all-zero holes; then tree nodes; then a copy of every root. A node with n_descendants <= K is a
// bucket holding that many item ids at the children offset; a node with more is a split whose two
// children are node indices. Searches hold a shared_ptr to the Forest, so unloading while searches
// are in flight only drops a reference; the bytes go when the last search finishes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mapped_file.h"
#include "metric.h"
#include "node_buffer.h"

namespace canopy {

// Sizes that follow from (metric, dim).
struct NodeLayout {
  MetricKind metric;
  int dim;            // the user's dimension (bits for hamming)
  int value_count;    // stored values per node (64-bit words for hamming)
  size_t node_size;   // bytes per node
  int32_t max_bucket; // K: most item ids a bucket can hold

  static NodeLayout of(MetricKind metric, int dim);
};

// Node bytes and where they came from; exactly one owner holds them.
struct ForestStorage {
  NodeBuffer buffer;    // built here (heap, or the on-disk build file)
  MappedFile mapping;   // loaded or saved file
  const uint8_t* data() const { return mapping.data() != nullptr ? mapping.data() : buffer.data(); }
};

class Forest {
 public:
  virtual ~Forest() = default;

  // Searches write at most result_capacity(k) results, best first, and return how many they wrote.
  // search_k <= 0 means n_trees * k (the requested k, as Annoy, even when fewer items exist). Thread-safe: any number of threads may search at once; per-thread
  // scratch is reused, so a warm thread searches without allocating.
  virtual size_t search_vector(const float* query, size_t k, int64_t search_k, int32_t* ids, float* distances) const = 0;
  // Throws Error OutOfRange unless 0 <= item < n_items.
  virtual size_t search_item(int32_t item, size_t k, int64_t search_k, int32_t* ids, float* distances) const = 0;
  virtual void get_item(int32_t item, float* out) const = 0;
  virtual float get_distance(int32_t i, int32_t j) const = 0;

  // Room a caller must give a search for k results: every candidate is a node, so at most n_nodes.
  size_t result_capacity(size_t k) const { return k < static_cast<size_t>(n_nodes_) ? k : static_cast<size_t>(n_nodes_); }

  const NodeLayout& layout() const { return layout_; }
  int32_t n_items() const { return n_items_; }
  int32_t n_nodes() const { return n_nodes_; }
  const std::vector<int32_t>& roots() const { return roots_; }
  const uint8_t* data() const { return storage_.data(); }
  const ForestStorage& storage() const { return storage_; }

  // Throws Error BadFile naming the file once the file this forest maps shrank underneath it (see
  // mapping_guard.h): reads past the new end returned zeros, so whatever was computed is not an answer.
  // Also when a search met a reference load would have refused (the file was rewritten in place).
  // Every method that reads nodes calls it after reading. Thread-safe.
  void check_intact(bool saw_bad_reference = false) const;

  // hash64 of the node array, which names this forest to its sidecars. Computed on first use and kept:
  // the bytes of a forest do not change while it is loaded, and hashing reads all of them (about 0.1 s
  // per GB). Throws as check_intact() if the file shrank while it was read; a later call tries again.
  uint64_t content_hash() const;

  // Throws Error OutOfRange naming `what` unless 0 <= item < n_items.
  void check_item(int32_t item, const char* what) const;

  // Writes the node array to `path` (Annoy's file). Throws Error IoError naming the path.
  void write_to(const std::string& path) const;

  // A forest over freshly built bytes (trusted: no validation).
  static std::shared_ptr<const Forest> from_built(const NodeLayout& layout, ForestStorage storage,
                                                  int32_t n_items, int32_t n_nodes, std::vector<int32_t> roots);
  // Maps `path` and checks it: size a non-zero multiple of the node size, roots found by Annoy's rule,
  // every reachable child and bucket id in range, no cycles, node 0 a leaf. Throws Error BadFile/IoError
  // naming the file.
  static std::shared_ptr<const Forest> load(const std::string& path, const NodeLayout& layout, bool prefault);

 protected:
  Forest(const NodeLayout& layout, ForestStorage storage, int32_t n_items, int32_t n_nodes, std::vector<int32_t> roots)
      : layout_(layout), storage_(std::move(storage)), n_items_(n_items), n_nodes_(n_nodes), roots_(std::move(roots)) {}

  NodeLayout layout_;
  ForestStorage storage_;
  int32_t n_items_;
  int32_t n_nodes_;
  std::vector<int32_t> roots_;

 private:
  mutable std::once_flag hashed_;
  mutable uint64_t content_hash_ = 0;
};

template <class M>
struct MetricTag {
  using type = M;
};

// Calls f(MetricTag<M>{}) with the policy struct of `metric` (C++17 stand-in for a templated lambda).
template <class F>
decltype(auto) with_metric(MetricKind metric, F&& f) {
  switch (metric) {
    case MetricKind::Angular: return f(MetricTag<Angular>{});
    case MetricKind::Euclidean: return f(MetricTag<Euclidean>{});
    case MetricKind::Manhattan: return f(MetricTag<Manhattan>{});
    case MetricKind::Dot: return f(MetricTag<Dot>{});
    case MetricKind::Hamming: break;
  }
  return f(MetricTag<Hamming>{});
}

}  // namespace canopy
