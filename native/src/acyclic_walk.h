// A depth-first walk over a graph stored in a file (a forest's nodes, a sidecar's split records) that
// proves it has no cycle: a walk over a cycle would never end, so loaders check before trusting.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace canopy {

// Visits every node reachable from `starts` once. expand(i, push) checks node i and calls push(c) for
// each child c (nodes 0..count-1, checked by expand); on_cycle(i) is called, and must throw, when i is
// reached again while it is its own ancestor.
template <class Expand, class OnCycle>
void walk_acyclic(size_t count, const std::vector<int32_t>& starts, Expand expand, OnCycle on_cycle) {
  enum : uint8_t { kUnseen = 0, kOpen = 1, kDone = 2 };
  std::vector<uint8_t> state(count, kUnseen);
  std::vector<std::pair<int32_t, bool>> stack;  // (node, leaving)
  for (int32_t s : starts) stack.emplace_back(s, false);
  while (!stack.empty()) {
    const auto [i, leaving] = stack.back();
    stack.pop_back();
    if (leaving) {
      state[i] = kDone;
      continue;
    }
    if (state[i] == kDone) continue;
    if (state[i] == kOpen) on_cycle(i);
    state[i] = kOpen;
    stack.emplace_back(i, true);
    expand(i, [&](int32_t child) { stack.emplace_back(child, false); });
  }
}

}  // namespace canopy
