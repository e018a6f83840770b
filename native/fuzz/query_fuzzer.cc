// libFuzzer target: arbitrary queries against small valid indexes (one per metric, built once).
//
// Input: byte 0 picks the metric, then k (uint32, as the binding accepts up to 2^31-1 and the wire
// up to 2^32-1), search_k (int64, any sign), an item id (int32, any value) and the query's floats
// (NaN, infinities and denormals included; missing floats read as zero). Searches by vector and by
// item, get_item and get_distance run; only canopy::Error may escape.
#include <memory>
#include <vector>

#include "error.h"
#include "fuzz_input.h"
#include "index.h"
#include "kiss_random.h"

namespace {

constexpr int kDim = 24;  // not a multiple of the SIMD width: tails are exercised too
constexpr int kItems = 300;
constexpr int kTrees = 4;

std::unique_ptr<canopy::Index> build(canopy::MetricKind metric) {
  auto index = std::make_unique<canopy::Index>(metric, kDim, 42);
  canopy::Kiss64Random random(7);
  std::vector<float> v(kDim);
  for (int32_t i = 0; i < kItems; ++i) {
    for (float& x : v) {
      const float r = static_cast<float>(random.next() % 2001) / 1000.0f - 1.0f;
      x = metric == canopy::MetricKind::Hamming ? (r > 0 ? 1.0f : 0.0f) : r;
    }
    index->add_item(i, v.data());
  }
  index->build(kTrees, 1);
  return index;
}

const std::vector<std::unique_ptr<canopy::Index>>& indexes() {
  static const auto all = [] {
    std::vector<std::unique_ptr<canopy::Index>> out;
    for (int m = 0; m < 5; ++m) out.push_back(build(static_cast<canopy::MetricKind>(m)));
    return out;
  }();
  return all;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  canopy_fuzz::FuzzInput in(data, size);
  const auto& index = *indexes()[in.take<uint8_t>() % 5];
  const size_t k = in.take<uint32_t>();
  const int64_t search_k = in.take<int64_t>();
  const int32_t item = in.take<int32_t>();
  std::vector<float> query(kDim);
  for (float& x : query) x = in.take<float>();

  const auto forest = index.forest();
  std::vector<int32_t> ids(forest->result_capacity(k));
  std::vector<float> distances(ids.size());
  const size_t found = forest->search_vector(query.data(), k, search_k, ids.data(), distances.data());
  if (found > ids.size()) __builtin_trap();
  for (size_t i = 0; i < found; ++i) {
    if (ids[i] < 0 || ids[i] >= forest->n_items()) __builtin_trap();
  }
  try {
    forest->search_item(item, k, search_k, ids.data(), distances.data());
    forest->get_item(item, query.data());
    forest->get_distance(item, static_cast<int32_t>(k % kItems));
  } catch (const canopy::Error&) {
    // an item outside the index: refused by design
  }
  return 0;
}
