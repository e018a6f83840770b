// libFuzzer target: arbitrary bytes as an Annoy index file.
//
// Input: byte 0 picks the metric, byte 1 the dimension (1..64), the rest is the file. The file is
// written to a per-process temporary path and loaded as the shard node loads it (Index::load: mmap,
// size and reference checks). A file the loader accepts must then survive searches by vector and by
// item, get_item and get_distance. Only canopy::Error may escape the engine: anything else, a crash or
// a sanitizer report is a finding.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "error.h"
#include "fuzz_input.h"
#include "index.h"

namespace {

const std::string& scratch_path() {
  static const std::string path = [] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir != nullptr ? dir : "/tmp") + "/canopy-load-fuzz-" + std::to_string(::getpid()) + ".ann";
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

void exercise(const canopy::Index& index) {
  const auto forest = index.forest();
  const auto& layout = forest->layout();
  const size_t k = 10;
  std::vector<int32_t> ids(forest->result_capacity(k));
  std::vector<float> distances(ids.size());
  std::vector<float> vector(static_cast<size_t>(layout.dim), 0.5f);
  forest->search_vector(vector.data(), k, -1, ids.data(), distances.data());
  forest->search_vector(vector.data(), k, 1000, ids.data(), distances.data());
  const int32_t n = forest->n_items();
  for (int32_t item : {0, n / 2, n - 1}) {
    if (item < 0 || item >= n) continue;
    forest->search_item(item, k, -1, ids.data(), distances.data());
    forest->get_item(item, vector.data());
    forest->get_distance(item, 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  canopy_fuzz::FuzzInput in(data, size);
  const auto metric = static_cast<canopy::MetricKind>(in.take<uint8_t>() % 5);
  const int dim = 1 + in.take<uint8_t>() % 64;
  write_file(scratch_path(), in.rest(), in.remaining());
  try {
    const auto index = canopy::Index::load(scratch_path(), metric, dim, false);
    exercise(*index);
  } catch (const canopy::Error&) {
    // a refused file, or a refused call on an accepted one: the expected outcome for most inputs
  }
  return 0;
}
