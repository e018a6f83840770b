// The neighbour graph as a sidecar section (kind 5, docs/sidecar-format.md): the rows of graph.h as
// little-endian int32, row after row; params[0] = width, params[1] = n_items.
#pragma once

#include <memory>
#include <string>

#include "forest.h"
#include "graph.h"
#include "sidecar.h"

namespace canopy {

SectionData graph_section(const Graph& graph);

// The graph a loaded sidecar carries for `forest`, rows mapped in place, or nullptr when it has no
// graph section. Throws Error BadFile (bad_sidecar) when the section breaks its rules: a width or
// item count other than the forest's and the row rules, a size other than n_items * width * 4, ids
// out of range, self loops, repeats, ids after padding; or when the forest's metric has no graph.
std::shared_ptr<const Graph> graph_of_sidecar(std::shared_ptr<const Sidecar> sidecar, const Forest& forest);

}  // namespace canopy
