// libFuzzer target: arbitrary bytes as a sidecar of codes.
//
// Input: byte 0 picks the forest (one of four metrics, 64 items of dimension 12, built once), byte 1
// the mode. Mode even: the rest is the whole sidecar file, as found on disk (the container's checks
// are fuzzed). Mode odd: the well-formed sidecar of that forest with the rest XORed over its code
// sections' bytes (section by section, cycling through them), written back with correct hashes, so
// the code sections' own checks are what is fuzzed. A sidecar the loader accepts must then survive
// searches by vector and by item with ids in range. Only canopy::Error may escape the engine:
// anything else, a crash or a sanitizer report is a finding.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "codes.h"
#include "error.h"
#include "fuzz_input.h"
#include "index.h"

namespace {

constexpr int kDim = 12;
constexpr int32_t kItems = 64;
constexpr canopy::MetricKind kMetrics[] = {canopy::MetricKind::Angular, canopy::MetricKind::Euclidean,
                                           canopy::MetricKind::Manhattan, canopy::MetricKind::Dot};

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
    return std::string(dir != nullptr ? dir : "/tmp") + "/canopy-codes-fuzz-" + std::to_string(::getpid()) + ".codes";
  }();
  return path;
}

void write_file(const std::string& path, const uint8_t* data, size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) std::abort();
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n <= 0) std::abort();
    data += n;
    size -= static_cast<size_t>(n);
  }
  ::close(fd);
}

void search_everything(const canopy::CodedForest& coded) {
  const size_t k = 5;
  std::vector<int32_t> ids(k);
  std::vector<float> distances(k);
  std::vector<float> query(kDim, 0.25f);
  for (int64_t search_k : {-1, 10, 1000}) {
    const size_t n = coded.search_vector(query.data(), k, search_k, -1, ids.data(), distances.data());
    for (size_t i = 0; i < n; ++i) {
      if (ids[i] < 0 || ids[i] >= kItems) std::abort();
    }
  }
  for (int32_t item = 0; item < kItems; item += 9) coded.search_item(item, k, -1, 3, ids.data(), distances.data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::shared_ptr<const canopy::Forest> forests[] = {forest_of(kMetrics[0]), forest_of(kMetrics[1]),
                                                                  forest_of(kMetrics[2]), forest_of(kMetrics[3])};
  canopy_fuzz::FuzzInput in(data, size);
  const auto& forest = forests[in.take<uint8_t>() % 4];
  const bool mutate_sections = (in.take<uint8_t>() & 1) != 0;
  try {
    if (mutate_sections) {
      std::vector<canopy::SectionData> sections = canopy::build_code_sections(*forest, 7);
      for (size_t i = 0; in.remaining() > 0 && !sections.empty(); ++i) {
        auto& bytes = sections[i % sections.size()].bytes;
        const uint32_t at = in.take<uint32_t>();
        if (!bytes.empty()) bytes[at % bytes.size()] ^= in.take<uint8_t>();
      }
      canopy::write_sidecar(scratch_path(), canopy::ForestIdentity::of(*forest), sections);
    } else {
      write_file(scratch_path(), in.rest(), in.remaining());
    }
    search_everything(*canopy::CodedForest::load(forest, scratch_path(), false));
  } catch (const canopy::Error&) {
    // a refused sidecar: the expected outcome for most inputs
  }
  return 0;
}
