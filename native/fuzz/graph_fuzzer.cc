// libFuzzer target: arbitrary bytes as the neighbour graph section of a sidecar.
//
// Input: byte 0 picks the forest (angular or euclidean, 64 items of dimension 4, built once), byte 1
// the search's ef, then u32 width and u32 n_items (the section's params), the rest the rows. They are
// written as a well-formed sidecar of that forest (so the container's hashes pass and the graph
// section's own checks are what is fuzzed), loaded, and the graph read back (graph_of_sidecar). A
// graph the reader accepts must then survive searches by item and by vector with ids in range. Only
// canopy::Error may escape the engine: anything else, a crash or a sanitizer report is a finding.
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "error.h"
#include "fuzz_input.h"
#include "graph_search.h"
#include "graph_section.h"
#include "index.h"

namespace {

constexpr int kDim = 4;
constexpr int32_t kItems = 64;

std::shared_ptr<const canopy::Forest> forest_of(canopy::MetricKind metric) {
  canopy::Index index(metric, kDim);
  uint64_t x = 88172645463325252ULL;  // xorshift: the same forest every run
  float v[kDim];
  for (int32_t i = 0; i < kItems; ++i) {
    for (float& f : v) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      f = static_cast<float>(x % 2001) / 1000.0f - 1.0f;
    }
    index.add_item(i, v);
  }
  index.build(3, 1);
  return index.forest();
}

const std::string& scratch_path() {
  static const std::string path = [] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir != nullptr ? dir : "/tmp") + "/canopy-graph-fuzz-" + std::to_string(::getpid()) + ".codes";
  }();
  return path;
}

void check_ids(const std::vector<int32_t>& ids, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= kItems) std::abort();
  }
}

void search_everything(const canopy::Forest& forest, const canopy::Graph& graph, int ef) {
  canopy::GraphQuery q;
  q.k = 5;
  q.ef = ef;
  std::vector<int32_t> ids(q.k);
  std::vector<float> distances(q.k);
  for (int32_t item = 0; item < kItems; item += 7) {
    check_ids(ids, canopy::graph_search_item(forest, graph.view(), item, q, ids.data(), distances.data()));
  }
  const float query[kDim] = {0.5f, -0.25f, 0.0f, 1.0f};
  check_ids(ids, canopy::graph_search_vector(forest, graph.view(), query, q, ids.data(), distances.data()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::shared_ptr<const canopy::Forest> forests[2] = {forest_of(canopy::MetricKind::Angular),
                                                                   forest_of(canopy::MetricKind::Euclidean)};
  canopy_fuzz::FuzzInput in(data, size);
  const canopy::Forest& forest = *forests[in.take<uint8_t>() % 2];
  const int ef = 1 + in.take<uint8_t>() % 64;
  canopy::SectionData section{static_cast<uint32_t>(canopy::SectionKind::Graph), 0, {}, {}};
  section.params[0] = in.take<uint32_t>();
  section.params[1] = in.take<uint32_t>();
  section.bytes.assign(in.rest(), in.rest() + in.remaining());
  try {
    const canopy::ForestIdentity identity = canopy::ForestIdentity::of(forest);
    canopy::write_sidecar(scratch_path(), identity, {section});
    const auto graph = canopy::graph_of_sidecar(canopy::Sidecar::load(scratch_path(), identity, false), forest);
    if (graph == nullptr) std::abort();  // the section was written: it must be found
    search_everything(forest, *graph, ef);
  } catch (const canopy::Error&) {
    // refused: expected for most inputs
  }
  return 0;
}
