#include "index.h"

#include <limits>

#include "forest_builder.h"

namespace canopy {

namespace {

const char* state_text(int s) {
  switch (s) {
    case 0: return "still adding items (call build first)";
    case 1: return "building";
    case 2: return "already built";
    default: return "unloaded";
  }
}

}  // namespace

Index::Index(MetricKind metric, int dim, uint64_t seed)
    : layout_(NodeLayout::of(metric, dim)), seed_(seed), buffer_(NodeBuffer::in_memory(layout_.node_size)) {}

std::unique_ptr<Index> Index::load(const std::string& path, MetricKind metric, int dim, bool prefault) {
  auto index = std::make_unique<Index>(metric, dim);
  index->forest_ = Forest::load(path, index->layout_, prefault);
  index->n_items_ = index->forest_->n_items();
  index->trees_built_.store(static_cast<int>(index->forest_->roots().size()));
  index->state_.store(State::Ready);
  return index;
}

void Index::check_not_busy(const char* action) const {
  const State s = state_.load();
  if (s == State::Building) throw Error(ErrorCode::BadState, std::string("cannot ") + action + " while the index is building");
  if (s == State::Unloaded) throw Error(ErrorCode::BadState, std::string("cannot ") + action + ": the index was unloaded");
}

void Index::require(State wanted, const char* action) const {
  check_not_busy(action);
  const State s = state_.load();
  if (s != wanted) {
    throw Error(ErrorCode::BadState, std::string("cannot ") + action + ": the index is " + state_text(static_cast<int>(s)) +
                                         (s == State::Ready && forest_ && forest_->storage().mapping.data() ? " or loaded" : ""));
  }
}

void Index::on_disk_build(const std::string& path) {
  require(State::Adding, "start an on-disk build");
  if (n_items_ > 0) throw Error(ErrorCode::BadState, "on-disk build must be chosen before the first item is added");
  buffer_ = NodeBuffer::on_disk(path, layout_.node_size);
}

void Index::add_item(int32_t item, const float* values) {
  require(State::Adding, "add an item");
  if (item < 0 || item == std::numeric_limits<int32_t>::max()) {
    throw Error(ErrorCode::OutOfRange, "item id " + std::to_string(item) + " is out of range (0..2147483646)");
  }
  buffer_.reserve(static_cast<size_t>(item) + 1);
  with_metric(layout_.metric, [&](auto tag) {
    using M = typename decltype(tag)::type;
    auto* n = reinterpret_cast<typename M::Node*>(buffer_.data() + layout_.node_size * static_cast<size_t>(item));
    std::memset(n, 0, layout_.node_size);  // re-adding an id replaces it whole
    n->n_descendants = 1;
    M::pack(values, M::v(n), layout_.dim);
    M::init_node(n, layout_.value_count);
  });
  if (item >= n_items_) n_items_ = item + 1;
}

void Index::begin_build(int n_trees, int n_threads) {
  require(State::Adding, "build");
  if (n_trees == 0 || n_trees < -1) {
    throw Error(ErrorCode::InvalidArgument, "nTrees must be >= 1, or -1 for Annoy's automatic count; got " + std::to_string(n_trees));
  }
  if (n_threads < 1) throw Error(ErrorCode::InvalidArgument, "threads must be >= 1, got " + std::to_string(n_threads));
  pending_n_trees_ = n_trees;
  pending_n_threads_ = n_threads;
  state_.store(State::Building);
}

void Index::finish_build() {
  if (state_.load() != State::Building) throw Error(ErrorCode::BadState, "finish_build without begin_build");
  const int n_trees = pending_n_trees_;
  const int n_threads = pending_n_threads_;
  try {
    buffer_.reserve(static_cast<size_t>(n_items_));
    std::vector<int32_t> roots;
    int32_t n_nodes = 0;
    with_metric(layout_.metric, [&](auto tag) {
      using M = typename decltype(tag)::type;
      ForestBuilder<M> builder(buffer_, layout_, n_items_);
      roots = builder.build(n_trees, n_threads, seed_, trees_built_);
      n_nodes = builder.n_nodes();
    });
    ForestStorage storage;
    storage.buffer = std::move(buffer_);
    forest_ = Forest::from_built(layout_, std::move(storage), n_items_, n_nodes, std::move(roots));
    state_.store(State::Ready);
  } catch (...) {
    state_.store(State::Unloaded);  // a half-built forest is not usable
    throw;
  }
}

void Index::save(const std::string& path) {
  check_not_busy("save");
  if (state_.load() != State::Ready) throw Error(ErrorCode::BadState, "cannot save: the index has not been built");
  const NodeBuffer& built = forest_->storage().buffer;
  if (built.is_on_disk() && built.path() == path) return;  // the build already wrote it
  forest_->write_to(path);
  codes_.reset();  // they describe the built bytes' snapshot; load them again over the file
  // Serve from the file, as Annoy does after save. Our reference to the built bytes goes first, so
  // they are freed before the file is mapped (searches in flight keep their own reference).
  forest_.reset();
  try {
    forest_ = Forest::load(path, layout_, false);
  } catch (...) {
    state_.store(State::Unloaded);
    throw;
  }
}

void Index::unload() {
  check_not_busy("unload");
  codes_.reset();
  forest_.reset();
  graph_.reset();
  buffer_ = NodeBuffer();
  state_.store(State::Unloaded);
}

void Index::set_graph(std::shared_ptr<const Graph> graph) {
  const std::shared_ptr<const Forest> f = forest();
  if (graph->n_items != f->n_items()) {
    throw Error(ErrorCode::BadState, "neighbour graph has " + std::to_string(graph->n_items) + " rows, the index " +
                                         std::to_string(f->n_items()) + " items");
  }
  graph_ = std::move(graph);
}

std::shared_ptr<const Forest> Index::forest() const {
  check_not_busy("search");
  if (state_.load() != State::Ready) throw Error(ErrorCode::BadState, "cannot search: the index has not been built");
  return forest_;
}

void Index::save_codes(const std::string& path, uint64_t seed) {
  const std::shared_ptr<const Forest> f = forest();
  codes_ = write_codes(f, path, seed);
}

void Index::load_codes(const std::string& path, bool prefault) {
  codes_ = CodedForest::load(forest(), path, prefault);
}

void Index::get_item(int32_t item, float* out) const {
  check_not_busy("read an item");
  if (state_.load() == State::Ready) return forest_->get_item(item, out);
  if (item < 0 || item >= n_items_) {
    throw Error(ErrorCode::OutOfRange, "item " + std::to_string(item) + " is out of range (index has " + std::to_string(n_items_) + " items)");
  }
  with_metric(layout_.metric, [&](auto tag) {
    using M = typename decltype(tag)::type;
    auto* n = reinterpret_cast<const typename M::Node*>(buffer_.data() + layout_.node_size * static_cast<size_t>(item));
    M::unpack(M::v(n), out, layout_.dim);
  });
}

float Index::get_distance(int32_t i, int32_t j) const {
  check_not_busy("compute a distance");
  if (state_.load() == State::Ready) return forest_->get_distance(i, j);
  for (int32_t id : {i, j}) {
    if (id < 0 || id >= n_items_) {
      throw Error(ErrorCode::OutOfRange, "item " + std::to_string(id) + " is out of range (index has " + std::to_string(n_items_) + " items)");
    }
  }
  return with_metric(layout_.metric, [&](auto tag) {
    using M = typename decltype(tag)::type;
    auto node = [&](int32_t id) {
      return reinterpret_cast<const typename M::Node*>(buffer_.data() + layout_.node_size * static_cast<size_t>(id));
    };
    return M::normalized_distance(M::distance(node(i), node(j), layout_.value_count));
  });
}

int32_t Index::n_items() const { return n_items_; }

int32_t Index::n_trees() const {
  const State s = state_.load();
  return s == State::Ready ? static_cast<int32_t>(forest_->roots().size()) : 0;
}

}  // namespace canopy
