#include "graph_section.h"

#include <cstring>

namespace canopy {

SectionData graph_section(const Graph& graph) {
  const GraphView v = graph.view();
  SectionData s{static_cast<uint32_t>(SectionKind::Graph), 0, {}, {}};
  s.params[0] = static_cast<uint32_t>(v.width);
  s.params[1] = static_cast<uint32_t>(v.n_items);
  const size_t bytes = sizeof(int32_t) * static_cast<size_t>(v.n_items) * static_cast<size_t>(v.width);
  s.bytes.resize(bytes);
  if (bytes > 0) std::memcpy(s.bytes.data(), v.rows, bytes);  // the engine runs on little-endian hosts only
  return s;
}

std::shared_ptr<const Graph> graph_of_sidecar(std::shared_ptr<const Sidecar> sidecar, const Forest& forest) {
  const SectionView* s = sidecar->find(SectionKind::Graph);
  if (s == nullptr) return nullptr;
  const std::string& path = sidecar->path();
  const MetricKind metric = forest.layout().metric;
  if (metric == MetricKind::Dot || metric == MetricKind::Hamming) {
    throw bad_sidecar(path, std::string("holds a neighbour graph for a ") + metric_name(metric) + " forest, which cannot have one");
  }
  const uint32_t width = s->params[0];
  const uint32_t n_items = s->params[1];
  if (n_items != static_cast<uint32_t>(forest.n_items())) {
    throw bad_sidecar(path, "is corrupt: its neighbour graph has " + std::to_string(n_items) + " rows, the forest " +
                                std::to_string(forest.n_items()) + " items");
  }
  if (width < static_cast<uint32_t>(kGraphMinWidth) || width > static_cast<uint32_t>(kGraphMaxWidth) || width % kGraphRowAlignment != 0) {
    throw bad_sidecar(path, "is corrupt: neighbour graph row width " + std::to_string(width) + " is not a multiple of " +
                                std::to_string(kGraphRowAlignment) + " in " + std::to_string(kGraphMinWidth) + ".." +
                                std::to_string(kGraphMaxWidth));
  }
  const uint64_t expected = uint64_t{4} * n_items * width;
  if (s->size != expected) {
    throw bad_sidecar(path, "is corrupt: its neighbour graph section has " + std::to_string(s->size) + " bytes, not " +
                                std::to_string(expected) + " (" + std::to_string(n_items) + " rows of " + std::to_string(width) + " ids)");
  }
  auto graph = std::make_shared<Graph>();
  graph->n_items = static_cast<int32_t>(n_items);
  graph->width = static_cast<int>(width);
  graph->mapped_rows = reinterpret_cast<const int32_t*>(s->data);  // 64-byte aligned in the mapping
  try {
    check_graph_rows(graph->view(), "neighbour graph");
  } catch (const Error& e) {
    throw bad_sidecar(path, std::string("is corrupt: ") + e.what());
  }
  sidecar->release_pages();
  graph->mapping = std::move(sidecar);
  return graph;
}

}  // namespace canopy
