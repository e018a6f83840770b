// Loading checks every page of a forest and its sidecars (validation, hashes), but must not leave them
// all resident in the process: a graph search reads only part of them, and the memory an index costs
// is what stays resident. Measured on real mapped files through /proc/self/smaps.
#include <climits>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "codes.h"
#include "graph_build.h"
#include "graph_section.h"
#include "index.h"
#include "sidecar.h"
#include "test_main.h"

using canopy::MetricKind;

namespace {

constexpr int kDim = 64;
constexpr int32_t kItems = 20000;  // a forest of about 9 MB: many pages, quick to build

// Bytes of `path` mapped resident in this process (the Rss of its mappings in /proc/self/smaps).
size_t resident_bytes(const std::string& path) {
  char real[PATH_MAX];
  if (::realpath(path.c_str(), real) == nullptr) return 0;
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool ours = false;
  size_t bytes = 0;
  while (std::getline(smaps, line)) {
    const size_t space = line.find(' ');
    const bool mapping_line = space != std::string::npos && line.find('-') < space;
    if (mapping_line) {
      ours = line.size() >= std::string(real).size() && line.compare(line.size() - std::string(real).size(), std::string::npos, real) == 0;
    } else if (ours && line.rfind("Rss:", 0) == 0) {
      bytes += std::stoull(line.substr(4)) * 1024;
    }
  }
  return bytes;
}

size_t file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  return static_cast<size_t>(in.tellg());
}

std::string saved_forest() {
  canopy::Index index(MetricKind::Euclidean, kDim, 3);
  std::mt19937 g(11);
  std::normal_distribution<float> normal;
  std::vector<float> v(kDim);
  for (int32_t i = 0; i < kItems; ++i) {
    for (auto& x : v) x = normal(g);
    index.add_item(i, v.data());
  }
  index.build(10, 1);
  const std::string path = canopy_test::temp_dir() + "/resident.ann";
  index.save(path);
  return path;
}

}  // namespace

TEST(loading_a_forest_and_its_sidecars_leaves_few_pages_resident) {
  const std::string ann = saved_forest();
  const auto index = canopy::Index::load(ann, MetricKind::Euclidean, kDim, false);
  const auto forest = index->forest();
  const size_t forest_size = file_bytes(ann);
  CHECK(resident_bytes(ann) < forest_size / 10);  // validation read every tree node and item

  const std::string codes = canopy_test::temp_dir() + "/resident.codes";
  canopy::write_codes(forest, codes, 5);
  const auto coded = canopy::CodedForest::load(forest, codes, false);  // hashes the forest and the sidecar
  CHECK(resident_bytes(ann) < forest_size / 10);
  CHECK(resident_bytes(codes) < file_bytes(codes) / 10);

  const std::string graph_path = canopy_test::temp_dir() + "/resident.graph";
  canopy::GraphBuildOptions options;
  options.width = 16;
  const canopy::Graph built = canopy::build_graph(*forest, options);
  canopy::write_sidecar(graph_path, canopy::ForestIdentity::of(*forest), {canopy::graph_section(built)});
  const auto graph = canopy::graph_of_sidecar(canopy::Sidecar::load(graph_path, canopy::ForestIdentity::of(*forest), false), *forest);
  CHECK(graph != nullptr);
  CHECK(resident_bytes(graph_path) < file_bytes(graph_path) / 10);  // every row was checked
  CHECK(resident_bytes(ann) < forest_size / 10);
}

TEST(a_prefaulted_forest_stays_resident) {
  // The measure above can see residency: asked for, every page stays.
  const std::string ann = saved_forest();
  const auto index = canopy::Index::load(ann, MetricKind::Euclidean, kDim, true);
  CHECK(resident_bytes(ann) >= file_bytes(ann) * 9 / 10);
}
