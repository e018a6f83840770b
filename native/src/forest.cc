#include "forest.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <limits>

#include "acyclic_walk.h"
#include "hash64.h"
#include "search.h"

namespace canopy {

NodeLayout NodeLayout::of(MetricKind metric, int dim) {
  if (dim <= 0) throw Error(ErrorCode::InvalidArgument, "dim must be a positive integer, got " + std::to_string(dim));
  return with_metric(metric, [&](auto tag) {
    using M = typename decltype(tag)::type;
    NodeLayout l;
    l.metric = metric;
    l.dim = dim;
    l.value_count = M::value_count(dim);
    l.node_size = sizeof(typename M::Node) + sizeof(typename M::Value) * static_cast<size_t>(l.value_count);
    l.max_bucket = static_cast<int32_t>((l.node_size - M::kChildrenOffset) / sizeof(int32_t));
    return l;
  });
}

void Forest::check_item(int32_t item, const char* what) const {
  if (item < 0 || item >= n_items_) {
    throw Error(ErrorCode::OutOfRange, std::string(what) + " " + std::to_string(item) + " is out of range (index has " +
                                           std::to_string(n_items_) + " items: 0.." + std::to_string(n_items_ - 1) + ")");
  }
}

namespace {

Error changed_on_disk(const std::string& path) {
  return Error(ErrorCode::BadFile, "index file '" + path + "' changed on disk while mapped (truncated?); reload the version");
}

}  // namespace

void Forest::check_intact(bool saw_bad_reference) const {
  if (storage_.mapping.damaged() || saw_bad_reference) throw changed_on_disk(storage_.mapping.path());
}

uint64_t Forest::content_hash() const {
  std::call_once(hashed_, [this] {
    const uint64_t hash = hash64(data(), layout_.node_size * static_cast<size_t>(n_nodes_));
    check_intact();  // a truncated mapping read as zeros: that hash names no file
    content_hash_ = hash;
  });
  return content_hash_;
}

void Forest::write_to(const std::string& path) const {
  ::unlink(path.c_str());  // a reader may still map the old file (Annoy #335)
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(ErrorCode::IoError, errno_message("cannot create index file", path, errno));
  const uint8_t* p = data();
  size_t left = layout_.node_size * static_cast<size_t>(n_nodes_);
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      check_intact();
      // The kernel reads the mapping itself: pages gone from a truncated file are EFAULT, not SIGBUS.
      if (err == EFAULT && storage_.mapping.data() != nullptr) throw changed_on_disk(storage_.mapping.path());
      throw Error(ErrorCode::IoError, errno_message("cannot write index file", path, err));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::close(fd) != 0) throw Error(ErrorCode::IoError, errno_message("cannot close index file", path, errno));
  check_intact();  // zeros were written
}

namespace {

template <class M>
class ForestImpl final : public Forest {
 public:
  using Node = typename M::Node;

  ForestImpl(const NodeLayout& layout, ForestStorage storage, int32_t n_items, int32_t n_nodes, std::vector<int32_t> roots)
      : Forest(layout, std::move(storage), n_items, n_nodes, std::move(roots)) {}

  size_t search_vector(const float* query, size_t k, int64_t search_k, int32_t* ids, float* distances) const override {
    SearchScratch<M>& s = SearchScratch<M>::local();
    ForestSearch<M> search(data(), layout_, n_items_, n_nodes_, roots_);
    const size_t found = search.run(s, search.query_from_input(s, query), k, search_k, ids, distances);
    check_intact(search.saw_bad_reference());
    return found;
  }

  size_t search_item(int32_t item, size_t k, int64_t search_k, int32_t* ids, float* distances) const override {
    check_item(item, "item");
    SearchScratch<M>& s = SearchScratch<M>::local();
    ForestSearch<M> search(data(), layout_, n_items_, n_nodes_, roots_);
    const size_t found = search.run(s, search.query_from_values(s, M::v(search.node(item))), k, search_k, ids, distances);
    check_intact(search.saw_bad_reference());
    return found;
  }

  void get_item(int32_t item, float* out) const override {
    check_item(item, "item");
    M::unpack(M::v(node(item)), out, layout_.dim);
    check_intact();
  }

  float get_distance(int32_t i, int32_t j) const override {
    check_item(i, "item");
    check_item(j, "item");
    const float d = M::normalized_distance(M::distance(node(i), node(j), layout_.value_count));
    check_intact();
    return d;
  }

 private:
  const Node* node(int32_t i) const {
    return reinterpret_cast<const Node*>(data() + layout_.node_size * static_cast<size_t>(i));
  }
};

std::string describe(const std::string& path, const NodeLayout& layout) {
  return "'" + path + "' (" + metric_name(layout.metric) + ", dim " + std::to_string(layout.dim) + ", node size " +
         std::to_string(layout.node_size) + " bytes)";
}

// Annoy's root rule: the trailing run of nodes sharing the last node's n_descendants are the root
// copies; if the run's first and last share children[0], the first is the original root, dropped.
std::vector<int32_t> find_roots(const uint8_t* data, const NodeLayout& layout, int32_t n_nodes, int32_t* n_items) {
  auto header = [&](int32_t i) { return reinterpret_cast<const int32_t*>(data + layout.node_size * static_cast<size_t>(i)); };
  std::vector<int32_t> roots;
  const int32_t m = header(n_nodes - 1)[0];
  for (int32_t i = n_nodes - 1; i >= 0 && header(i)[0] == m; --i) roots.push_back(i);
  if (roots.size() > 1 && header(roots.front())[1] == header(roots.back())[1]) roots.pop_back();
  *n_items = m;
  return roots;
}

// One pass over every node reachable from the roots, classified exactly as the search classifies
// them: child and bucket ids must be node indices, split data must be usable, and no node may be its
// own descendant (a cycle would make a search loop forever).
template <class M>
void validate_reachable(const uint8_t* data, const NodeLayout& layout, int32_t n_items, int32_t n_nodes,
                        const std::vector<int32_t>& roots, const std::string& path) {
  using Node = typename M::Node;
  auto fail = [&](int32_t node, const std::string& what) {
    throw Error(ErrorCode::BadFile, "index file " + describe(path, layout) + " is corrupt: node " + std::to_string(node) + " " + what);
  };
  auto in_range = [&](int32_t id) { return id >= 0 && id < n_nodes; };
  auto expand = [&](int32_t i, auto push) {
    const Node* nd = reinterpret_cast<const Node*>(data + layout.node_size * static_cast<size_t>(i));
    const int32_t n = nd->n_descendants;
    const int32_t* c = reinterpret_cast<const int32_t*>(reinterpret_cast<const uint8_t*>(nd) + M::kChildrenOffset);
    if (n == 1 && i < n_items) return;  // an item: a leaf
    if (n < 0) fail(i, "has a negative descendant count " + std::to_string(n));
    if (n <= layout.max_bucket) {
      for (int32_t j = 0; j < n; ++j) {
        if (!in_range(c[j])) fail(i, "holds item id " + std::to_string(c[j]) + " outside 0.." + std::to_string(n_nodes - 1));
      }
      return;
    }
    for (int side = 0; side < 2; ++side) {
      if (!in_range(c[side])) fail(i, "has child " + std::to_string(c[side]) + " outside 0.." + std::to_string(n_nodes - 1));
    }
    if (!M::split_is_valid(nd, layout.value_count)) fail(i, "has an invalid split");
    push(c[0]);
    push(c[1]);
  };
  walk_acyclic(static_cast<size_t>(n_nodes), roots, expand, [&](int32_t i) { fail(i, "is its own descendant (cycle)"); });
}

}  // namespace

std::shared_ptr<const Forest> Forest::from_built(const NodeLayout& layout, ForestStorage storage, int32_t n_items,
                                                 int32_t n_nodes, std::vector<int32_t> roots) {
  return with_metric(layout.metric, [&](auto tag) -> std::shared_ptr<const Forest> {
    using M = typename decltype(tag)::type;
    return std::make_shared<ForestImpl<M>>(layout, std::move(storage), n_items, n_nodes, std::move(roots));
  });
}

std::shared_ptr<const Forest> Forest::load(const std::string& path, const NodeLayout& layout, bool prefault) {
  ForestStorage storage;
  storage.mapping = MappedFile::open_read_only(path, prefault);
  const size_t size = storage.mapping.size();
  if (size == 0) throw Error(ErrorCode::BadFile, "index file " + describe(path, layout) + " is empty");
  if (size % layout.node_size != 0) {
    throw Error(ErrorCode::BadFile, "index file " + describe(path, layout) + " has size " + std::to_string(size) +
                                        " bytes, not a multiple of the node size: wrong dim or metric, or a truncated file");
  }
  const size_t node_count = size / layout.node_size;
  if (node_count > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    throw Error(ErrorCode::BadFile, "index file " + describe(path, layout) + " has " + std::to_string(node_count) +
                                        " nodes, more than 2^31-1");
  }
  const int32_t n_nodes = static_cast<int32_t>(node_count);
  int32_t n_items = 0;
  std::vector<int32_t> roots = find_roots(storage.mapping.data(), layout, n_nodes, &n_items);
  if (n_items < 0 || n_items > n_nodes) {
    throw Error(ErrorCode::BadFile, "index file " + describe(path, layout) + " is corrupt: its roots claim " +
                                        std::to_string(n_items) + " items in " + std::to_string(n_nodes) + " nodes");
  }
  with_metric(layout.metric, [&](auto tag) {
    using M = typename decltype(tag)::type;
    validate_reachable<M>(storage.mapping.data(), layout, n_items, n_nodes, roots, path);
    // Should the file shrink while served, zeroed child and bucket ids name node 0 (mapping_guard.h):
    // it must be a leaf with ids in range, or a search could loop. Annoy keeps item 0 or a hole there.
    const int32_t n0 = *reinterpret_cast<const int32_t*>(storage.mapping.data());
    if (n0 > layout.max_bucket) {
      throw Error(ErrorCode::BadFile, "index file " + describe(path, layout) +
                                          " is corrupt: node 0 is a split node (Annoy keeps item 0 or a hole there)");
    }
    validate_reachable<M>(storage.mapping.data(), layout, n_items, n_nodes, {0}, path);
  });
  if (storage.mapping.damaged()) throw changed_on_disk(path);
  storage.mapping.release_pages();  // the checks read every tree node and item; a search reads fewer
  return from_built(layout, std::move(storage), n_items, n_nodes, std::move(roots));
}

}  // namespace canopy
