#include "graph.h"

#include "error.h"
#include "sidecar.h"

namespace canopy {

bool Graph::damaged() const { return mapping != nullptr && mapping->damaged(); }

void Graph::check_intact() const {
  if (damaged()) throw bad_sidecar(mapping->path(), "changed on disk while mapped (truncated?); reload the version");
}

void check_graph_rows(const GraphView& graph, const std::string& source) {
  auto fail = [&](const std::string& what) { throw Error(ErrorCode::BadFile, source + ": " + what); };
  if (graph.width < kGraphMinWidth || graph.width > kGraphMaxWidth || graph.width % kGraphRowAlignment != 0) {
    fail("graph row width " + std::to_string(graph.width) + " is not a multiple of " + std::to_string(kGraphRowAlignment) +
         " in " + std::to_string(kGraphMinWidth) + ".." + std::to_string(kGraphMaxWidth));
  }
  if (graph.n_items < 0) fail("graph has a negative item count");
  // last_row[j] == i + 1 once item i's row named j: repeats found in one pass, no per-row sort.
  std::vector<int32_t> last_row(static_cast<size_t>(graph.n_items), 0);
  for (int32_t i = 0; i < graph.n_items; ++i) {
    const int32_t* row = graph.row(i);
    bool padding = false;
    for (int c = 0; c < graph.width; ++c) {
      const int32_t j = row[c];
      auto where = [&] { return "graph row " + std::to_string(i) + " column " + std::to_string(c); };
      if (j == kNoNeighbour) {
        padding = true;
        continue;
      }
      if (padding) fail(where() + " names a neighbour after the row's padding");
      if (j < 0 || j >= graph.n_items) fail(where() + " names item " + std::to_string(j) + " outside 0.." + std::to_string(graph.n_items - 1));
      if (j == i) fail(where() + " names its own item");
      if (last_row[static_cast<size_t>(j)] == i + 1) fail(where() + " names item " + std::to_string(j) + " twice");
      last_row[static_cast<size_t>(j)] = i + 1;
    }
  }
}

}  // namespace canopy
