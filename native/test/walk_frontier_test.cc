// The coded walk's frontier: take() returns what popping one heap that holds every entry would
// return, in the same order, so keeping a batch's children beside the heap changes no search result.
#include <algorithm>
#include <queue>
#include <random>
#include <vector>

#include "test_main.h"
#include "walk_frontier.h"

namespace {

constexpr size_t kBatch = 4;

// Random walks of roots, batches and children (with repeated values, as equal priorities give),
// checked step by step against a plain priority queue.
TEST(walk_frontier_takes_what_one_heap_would_pop) {
  std::mt19937_64 g(7);
  for (int round = 0; round < 200; ++round) {
    canopy::WalkFrontier<2 * kBatch> frontier;
    std::priority_queue<uint64_t> reference;
    const uint64_t range = round % 2 == 0 ? 16 : ~uint64_t{0};  // small ranges repeat values
    auto draw = [&] { return g() % range; };
    const int roots = 1 + static_cast<int>(g() % 50);
    for (int r = 0; r < roots; ++r) {
      const uint64_t e = draw();
      frontier.push(e);
      reference.push(e);
    }
    for (int step = 0; step < 100 && !frontier.empty(); ++step) {
      const size_t want = 1 + g() % kBatch;
      uint64_t got[kBatch];
      const size_t taken = frontier.take(got, want);
      CHECK(taken == std::min(want, reference.size()));
      for (size_t i = 0; i < taken; ++i) {
        CHECK(got[i] == reference.top());
        reference.pop();
      }
      const size_t children = g() % (2 * taken + 1);
      for (size_t c = 0; c < children; ++c) {
        const uint64_t e = draw();
        frontier.add_fresh(e);
        reference.push(e);
      }
    }
    CHECK(frontier.empty() == reference.empty());
  }
}

TEST(walk_frontier_empties_when_clear) {
  canopy::WalkFrontier<2 * kBatch> frontier;
  frontier.push(3);
  frontier.add_fresh(5);
  CHECK(!frontier.empty());
  frontier.clear();
  CHECK(frontier.empty());
  uint64_t got[kBatch];
  CHECK(frontier.take(got, kBatch) == 0);
}

}  // namespace
