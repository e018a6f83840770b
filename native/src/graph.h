// A neighbour graph over a forest's items: for each item up to `width` neighbour ids, best first.
//
// Rows have a fixed width so row i starts at i * width (width is a multiple of 8: a row is whole
// 32-byte halves of a 64-byte line, so one row spans at most width / 16 + 1 lines; multiples of 16
// would waste up to 15 ids a row, a quarter of the graph at the width 24 a 1M-item set needs). A row holds its neighbours first, then kNoNeighbour up to the
// end; no row names its own item, an id twice, or an id outside 0..n_items-1 (check_graph_rows).
// Holes (ids never added) have empty rows and are never named by another row.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace canopy {

constexpr int32_t kNoNeighbour = -1;
constexpr int kGraphRowAlignment = 8;  // ids per 32-byte half line
constexpr int kGraphMinWidth = 16;
constexpr int kGraphMaxWidth = 256;

// Read-only rows, owned elsewhere (a Graph, or a mapped sidecar section).
struct GraphView {
  const int32_t* rows = nullptr;
  int32_t n_items = 0;
  int width = 0;

  const int32_t* row(int32_t item) const { return rows + static_cast<size_t>(item) * static_cast<size_t>(width); }
  bool empty() const { return rows == nullptr; }
};

class Sidecar;

// Rows built in memory (`rows`), or mapped from a sidecar that `mapping` keeps open.
struct Graph {
  std::vector<int32_t> rows;
  int32_t n_items = 0;
  int width = 0;
  const int32_t* mapped_rows = nullptr;  // set iff mapped
  std::shared_ptr<const Sidecar> mapping;

  GraphView view() const { return GraphView{mapped_rows != nullptr ? mapped_rows : rows.data(), n_items, width}; }
  // True once a mapped sidecar shrank under its mapping (mapping_guard.h): rows read as zeros since.
  bool damaged() const;
  // Throws Error BadFile naming the sidecar once damaged(): a search over it gave no answer.
  void check_intact() const;
};

// Throws Error BadFile ("<source>: ...") unless the rows hold the invariants above: width a
// multiple of kGraphRowAlignment in kGraphMinWidth..kGraphMaxWidth, every id in range, no self loop, no
// repeat, padding only at the end of a row. `source` names the file or section in the message.
void check_graph_rows(const GraphView& graph, const std::string& source);

}  // namespace canopy
