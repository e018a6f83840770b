// The coded walk's frontier (coded_search.h): a max-heap of packed entries, plus the children of the
// batch just expanded, held beside the heap until the next batch is taken. Many of those children are
// the next batch themselves (a descent goes on below the split it came from); taking them straight
// from the side saves a heap push and pop each. A heap step is a chain of unpredictable compares, and
// each mispredicted branch also throws away the record loads the CPU had started past it.
// take() returns exactly what popping the heap with every child pushed would return, in the same order.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace canopy {

template <size_t kMaxFresh>
class WalkFrontier {
 public:
  void clear() {
    heap_.clear();
    n_fresh_ = 0;
  }

  bool empty() const { return heap_.empty() && n_fresh_ == 0; }

  // Straight into the heap (the roots).
  void push(uint64_t entry) {
    heap_.push_back(entry);
    std::push_heap(heap_.begin(), heap_.end());
  }

  // A child of the batch being expanded: at most kMaxFresh between two take()s.
  void add_fresh(uint64_t entry) { fresh_[n_fresh_++] = entry; }

  // Moves the `n` largest entries of heap and fresh to `out`, largest first, and returns how many
  // there were (fewer when the frontier runs out); the fresh entries left over join the heap.
  size_t take(uint64_t* out, size_t n) {
    std::sort(fresh_, fresh_ + n_fresh_, std::greater<uint64_t>());
    size_t f = 0;
    size_t taken = 0;
    for (; taken < n; ++taken) {
      if (f < n_fresh_ && (heap_.empty() || fresh_[f] >= heap_.front())) {
        out[taken] = fresh_[f++];
      } else if (!heap_.empty()) {
        std::pop_heap(heap_.begin(), heap_.end());
        out[taken] = heap_.back();
        heap_.pop_back();
      } else {
        break;
      }
    }
    for (; f < n_fresh_; ++f) push(fresh_[f]);
    n_fresh_ = 0;
    return taken;
  }

 private:
  std::vector<uint64_t> heap_;
  uint64_t fresh_[kMaxFresh];
  size_t n_fresh_ = 0;
};

}  // namespace canopy
