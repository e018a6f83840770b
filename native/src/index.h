// The engine's index: add items, build (in memory or straight into a file), save, load, search.
//
// Life cycle: adding -> built -> (saved: file-backed) ; or loaded from a file; unload() ends it.
// Methods are called from one thread (the binding's JS thread); build() may run on another thread
// while that thread polls trees_built(); every other call meanwhile fails with BadState. Searches go
// through forest(), an immutable snapshot that stays valid after unload() for as long as it is held.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "codes.h"
#include "forest.h"
#include "graph.h"
#include "kiss_random.h"
#include "node_buffer.h"

namespace canopy {

class Index {
 public:
  Index(MetricKind metric, int dim, uint64_t seed = Kiss64Random::kDefaultSeed);
  // Maps and validates an Annoy file; throws Error BadFile/IoError naming it.
  static std::unique_ptr<Index> load(const std::string& path, MetricKind metric, int dim, bool prefault);

  // Builds into `path` instead of memory; only before the first add_item (as Annoy).
  void on_disk_build(const std::string& path);
  // `values` holds dim floats (hamming: bits as 0/1 floats). Ids may leave holes, as in Annoy.
  void add_item(int32_t item, const float* values);
  // n_trees: >= 1, or -1 for Annoy's rule; n_threads >= 1. Thread-safe against trees_built().
  void build(int n_trees, int n_threads) {
    begin_build(n_trees, n_threads);
    finish_build();
  }
  // build() in two steps, for a build on another thread: begin_build() checks the arguments and
  // marks the index busy on the calling thread (so calls made meanwhile fail), finish_build() works.
  void begin_build(int n_trees, int n_threads);
  void finish_build();
  int trees_built() const { return trees_built_.load(); }
  // Writes Annoy's file, then serves from it (mapped). After an on-disk build, saving to the build
  // file itself is a no-op.
  void save(const std::string& path);
  void unload();

  // The searchable snapshot; throws BadState before build or after unload.
  std::shared_ptr<const Forest> forest() const;
  // Writes a sidecar of codes for the forest to `path` (codes.h), then searches through it.
  void save_codes(const std::string& path, uint64_t seed);
  // Maps `path` as this forest's sidecar and searches through it from now on. Throws Error BadFile
  // naming the file when it is refused (stale, foreign, truncated, corrupt); the index then keeps
  // searching as before.
  void load_codes(const std::string& path, bool prefault);
  // The codes searches go through unless they ask for exact, or null; a snapshot like forest().
  std::shared_ptr<const CodedForest> codes() const { return codes_; }

  // The neighbour graph searches with an ef use, or null; a snapshot like forest(), dropped by
  // unload(). set_graph() attaches one built over forest() (build_graph() may run on any thread:
  // the forest is immutable); throws BadState before build or after unload, or when the graph's
  // item count is not the forest's.
  std::shared_ptr<const Graph> graph() const { return graph_; }
  void set_graph(std::shared_ptr<const Graph> graph);

  void get_item(int32_t item, float* out) const;
  float get_distance(int32_t i, int32_t j) const;
  int32_t n_items() const;
  int32_t n_trees() const;
  const NodeLayout& layout() const { return layout_; }

 private:
  enum class State { Adding, Building, Ready, Unloaded };

  void require(State wanted, const char* action) const;
  void check_not_busy(const char* action) const;

  NodeLayout layout_;
  uint64_t seed_;
  std::atomic<State> state_{State::Adding};
  NodeBuffer buffer_;  // while adding and building
  int32_t n_items_ = 0;
  std::atomic<int> trees_built_{0};
  int pending_n_trees_ = 0;
  int pending_n_threads_ = 1;
  std::shared_ptr<const Forest> forest_;  // once ready
  std::shared_ptr<const Graph> graph_;    // set iff a graph was attached since ready
  std::shared_ptr<const CodedForest> codes_;  // over forest_, set iff codes were attached since ready
};

}  // namespace canopy
