// The neighbour graph: row invariants, quality against brute force, determinism, search recall and
// cost against the forest alone, exact distances, and refusal of corrupt rows.
#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "codes.h"
#include "graph.h"
#include "graph_build.h"
#include "graph_search.h"
#include "graph_section.h"
#include "index.h"
#include "test_main.h"

using canopy::Graph;
using canopy::GraphBuildOptions;
using canopy::GraphQuery;
using canopy::Index;
using canopy::MetricKind;

namespace {

// Items around uneven clusters, as embeddings tend to be.
std::vector<std::vector<float>> clustered(size_t n, int dim, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> normal;
  std::vector<std::vector<float>> centres(20, std::vector<float>(dim));
  for (auto& c : centres) {
    for (auto& x : c) x = 4 * normal(g);
  }
  std::vector<std::vector<float>> out(n, std::vector<float>(dim));
  for (size_t i = 0; i < n; ++i) {
    const auto& c = centres[(i * i) % centres.size()];
    for (int z = 0; z < dim; ++z) out[i][z] = c[z] + normal(g);
  }
  return out;
}

struct Fixture {
  std::vector<std::vector<float>> items;
  Index index;
  std::shared_ptr<const canopy::Forest> forest;

  Fixture(MetricKind metric, size_t n, int dim, int trees = 10) : items(clustered(n, dim, 7)), index(metric, dim) {
    for (size_t i = 0; i < n; ++i) index.add_item(static_cast<int32_t>(i), items[i].data());
    index.build(trees, 1);
    forest = index.forest();
  }
};

// The k nearest ids to item `of` (or to vector q), by the forest's own distances.
std::vector<int32_t> brute_force(const canopy::Forest& f, const std::vector<float>& q, size_t k) {
  std::vector<int32_t> ids(f.result_capacity(k));
  std::vector<float> d(ids.size());
  // search_k covering every candidate of every tree: the exact answer.
  const size_t n = f.search_vector(q.data(), k, int64_t{f.n_items()} * static_cast<int64_t>(f.roots().size()) * 4,
                                   ids.data(), d.data());
  ids.resize(n);
  return ids;
}

double overlap(const std::vector<int32_t>& a, const std::vector<int32_t>& truth) {
  const std::set<int32_t> t(truth.begin(), truth.end());
  size_t hit = 0;
  for (int32_t id : a) hit += t.count(id);
  return static_cast<double>(hit) / static_cast<double>(truth.size());
}

std::vector<int32_t> graph_ids(const canopy::Forest& f, const Graph& g, const std::vector<float>& q, const GraphQuery& gq,
                               size_t* cost = nullptr) {
  std::vector<int32_t> ids(f.result_capacity(gq.k));
  std::vector<float> d(ids.size());
  canopy::GraphSearchStats stats;
  const size_t n = canopy::graph_search_vector(f, g.view(), q.data(), gq, ids.data(), d.data(), &stats);
  ids.resize(n);
  if (cost != nullptr) *cost += stats.distances;
  return ids;
}

std::vector<std::vector<float>> queries(const Fixture& fx, size_t n) {
  std::mt19937 g(99);
  std::normal_distribution<float> noise(0, 0.5f);
  std::vector<std::vector<float>> out;
  for (size_t i = 0; i < n; ++i) {
    std::vector<float> q = fx.items[(i * 37) % fx.items.size()];
    for (auto& x : q) x += noise(g);
    out.push_back(q);
  }
  return out;
}

// Each returned id carries the same distance bits as the exhaustive forest search gives it.
void check_forest_distances(const canopy::Forest& f, const std::vector<float>& q, const std::vector<int32_t>& ids,
                            const std::vector<float>& d, size_t n) {
  const size_t all = static_cast<size_t>(f.n_items());
  std::vector<int32_t> fid(all);
  std::vector<float> fd(all);
  const size_t fn = f.search_vector(q.data(), all, int64_t{1} << 30, fid.data(), fd.data());
  for (size_t i = 0; i < n; ++i) {
    const auto at = std::find(fid.begin(), fid.begin() + static_cast<std::ptrdiff_t>(fn), ids[i]) - fid.begin();
    CHECK(static_cast<size_t>(at) < fn && fd[static_cast<size_t>(at)] == d[i]);
  }
}

}  // namespace

TEST(graph_rows_hold_their_invariants) {
  Fixture fx(MetricKind::Euclidean, 3000, 16);
  const Graph g = canopy::build_graph(*fx.forest, GraphBuildOptions{});
  CHECK(g.width >= 16 && g.width <= 48 && g.width % 8 == 0);  // chosen by the build
  CHECK(g.n_items == 3000);
  canopy::check_graph_rows(g.view(), "built graph");  // throws on any violation
  size_t edges = 0;
  for (int32_t i = 0; i < g.n_items; ++i) {
    const int32_t* row = g.view().row(i);
    std::set<int32_t> seen;
    for (int c = 0; c < g.width && row[c] != canopy::kNoNeighbour; ++c) {
      CHECK(row[c] >= 0 && row[c] < g.n_items);
      CHECK(row[c] != i);
      CHECK(seen.insert(row[c]).second);
      ++edges;
    }
    CHECK(!seen.empty());
  }
  CHECK(edges > 3000 * 4);
}

TEST(graph_rows_hold_each_items_nearest_neighbour) {
  Fixture fx(MetricKind::Angular, 3000, 40);
  const Graph g = canopy::build_graph(*fx.forest, GraphBuildOptions{});
  size_t found = 0;
  for (int32_t i = 0; i < g.n_items; ++i) {
    // The pruning keeps a row's closest candidate, so a good kNN list puts the true nearest first.
    const int32_t nearest = brute_force(*fx.forest, fx.items[static_cast<size_t>(i)], 2)[1];
    found += g.view().row(i)[0] == nearest ||
             fx.forest->get_distance(i, g.view().row(i)[0]) == fx.forest->get_distance(i, nearest);
  }
  CHECK(found >= 2950);  // >= 98%
}

TEST(graph_build_is_deterministic_across_thread_counts) {
  Fixture fx(MetricKind::Euclidean, 2500, 20);
  GraphBuildOptions one;
  GraphBuildOptions two;
  two.n_threads = 2;
  GraphBuildOptions three;
  three.n_threads = 3;
  const Graph a = canopy::build_graph(*fx.forest, one);
  for (const GraphBuildOptions& o : {one, two, three}) {
    const Graph b = canopy::build_graph(*fx.forest, o);
    CHECK(a.width == b.width && a.rows == b.rows);
  }
}

// Rows of `width` ids, `lengths[i]` of them used: ids i+1, i+2, ...
static Graph rows_of_lengths(const std::vector<int>& lengths, int width) {
  Graph g;
  g.n_items = static_cast<int32_t>(lengths.size());
  g.width = width;
  g.rows.assign(lengths.size() * static_cast<size_t>(width), canopy::kNoNeighbour);
  for (size_t i = 0; i < lengths.size(); ++i) {
    for (int c = 0; c < lengths[i]; ++c) g.rows[i * static_cast<size_t>(width) + static_cast<size_t>(c)] = static_cast<int32_t>(i) + 1 + c;
  }
  return g;
}

TEST(chosen_width_holds_95_percent_of_pruned_rows_whole) {
  std::vector<int> lengths(100, 9);
  CHECK(canopy::chosen_width(rows_of_lengths(lengths, 48).view()) == 16);
  for (int i = 0; i < 5; ++i) lengths[static_cast<size_t>(i)] = 40;  // 5% longer: cut
  CHECK(canopy::chosen_width(rows_of_lengths(lengths, 48).view()) == 16);
  lengths[5] = 17;  // 94% fit in 16
  CHECK(canopy::chosen_width(rows_of_lengths(lengths, 48).view()) == 24);
  CHECK(canopy::chosen_width(rows_of_lengths(std::vector<int>(100, 41), 48).view()) == 48);
  CHECK(canopy::chosen_width(rows_of_lengths(std::vector<int>(100, 0), 48).view()) == 16);
}

// Neighbours kept over all rows.
static size_t edges(const Graph& g) {
  return static_cast<size_t>(std::count_if(g.rows.begin(), g.rows.end(), [](int32_t id) { return id != canopy::kNoNeighbour; }));
}

TEST(a_chosen_width_is_filled_as_an_asked_one_and_an_asked_one_is_kept) {
  Fixture fx(MetricKind::Euclidean, 2500, 20);
  const Graph chosen = canopy::build_graph(*fx.forest, GraphBuildOptions{});
  CHECK(chosen.width >= 16 && chosen.width <= 48 && chosen.width % 8 == 0);
  GraphBuildOptions asked;
  asked.width = chosen.width;
  asked.candidates = 48;  // as a chosen width's build refines
  const Graph same = canopy::build_graph(*fx.forest, asked);
  CHECK(same.width == chosen.width && same.rows == chosen.rows);
  asked.width = 56;
  asked.candidates = 0;
  CHECK(canopy::build_graph(*fx.forest, asked).width == 56);
}

TEST(a_relaxed_prune_keeps_more_neighbours_than_the_strict_one) {
  Fixture fx(MetricKind::Angular, 2500, 20);
  GraphBuildOptions o;
  o.width = 16;
  o.prune_alpha = 1.0f;
  const Graph strict = canopy::build_graph(*fx.forest, o);
  o.prune_alpha = canopy::kGraphPruneAlpha;
  const Graph relaxed = canopy::build_graph(*fx.forest, o);
  CHECK(edges(relaxed) > edges(strict) + edges(strict) / 10);
}

TEST(graph_search_recall_and_order) {
  Fixture fx(MetricKind::Euclidean, 4000, 24);
  const Graph g = canopy::build_graph(*fx.forest, GraphBuildOptions{});
  double recall = 0;
  const auto qs = queries(fx, 100);
  for (const auto& q : qs) {
    GraphQuery gq;
    gq.ef = 64;
    std::vector<int32_t> ids(10);
    std::vector<float> d(10);
    const size_t n = canopy::graph_search_vector(*fx.forest, g.view(), q.data(), gq, ids.data(), d.data());
    CHECK(n == 10);
    recall += overlap(ids, brute_force(*fx.forest, q, 10));
    for (size_t i = 1; i < n; ++i) CHECK(d[i - 1] < d[i] || (d[i - 1] == d[i] && ids[i - 1] < ids[i]));
  }
  CHECK(recall / static_cast<double>(qs.size()) >= 0.97);
}

TEST(graph_search_distances_equal_the_forests) {
  Fixture fx(MetricKind::Angular, 2000, 32);
  const Graph g = canopy::build_graph(*fx.forest, GraphBuildOptions{});
  for (const auto& q : queries(fx, 20)) {
    GraphQuery gq;
    gq.ef = 40;
    std::vector<int32_t> ids(10);
    std::vector<float> d(10);
    const size_t n = canopy::graph_search_vector(*fx.forest, g.view(), q.data(), gq, ids.data(), d.data());
    check_forest_distances(*fx.forest, q, ids, d, n);
  }
}

TEST(graph_search_beats_the_forest_at_equal_cost) {
  Fixture fx(MetricKind::Euclidean, 6000, 32);
  const Graph g = canopy::build_graph(*fx.forest, GraphBuildOptions{});
  const auto qs = queries(fx, 100);
  double with_graph = 0, forest_only = 0;
  for (const auto& q : qs) {
    GraphQuery gq;
    gq.ef = 32;
    size_t cost = 0;
    const auto truth = brute_force(*fx.forest, q, 10);
    with_graph += overlap(graph_ids(*fx.forest, g, q, gq, &cost), truth);
    // The forest alone, allowed as many candidates as the graph search computed distances.
    std::vector<int32_t> ids(10);
    std::vector<float> d(10);
    const size_t n = fx.forest->search_vector(q.data(), 10, static_cast<int64_t>(cost), ids.data(), d.data());
    ids.resize(n);
    forest_only += overlap(ids, truth);
  }
  CHECK(with_graph >= forest_only);
  CHECK(with_graph / static_cast<double>(qs.size()) >= 0.9);
}

TEST(graph_search_by_item_finds_the_item_first) {
  Fixture fx(MetricKind::Manhattan, 1500, 12);
  const Graph g = canopy::build_graph(*fx.forest, GraphBuildOptions{});
  GraphQuery gq;
  gq.ef = 20;
  gq.k = 5;
  std::vector<int32_t> ids(5);
  std::vector<float> d(5);
  size_t first = 0;
  for (int32_t i = 0; i < 200; ++i) {
    CHECK(canopy::graph_search_item(*fx.forest, g.view(), i, gq, ids.data(), d.data()) == 5);
    first += ids[0] == i;
  }
  CHECK(first >= 198);
  REQUIRE_THROWS_CODE(canopy::graph_search_item(*fx.forest, g.view(), 1500, gq, ids.data(), d.data()),
                      canopy::ErrorCode::OutOfRange);
}

TEST(graph_skips_holes) {
  Index index(MetricKind::Euclidean, 8);
  const auto items = clustered(600, 8, 3);
  for (size_t i = 0; i < items.size(); ++i) {
    if (i % 7 != 3) index.add_item(static_cast<int32_t>(i), items[i].data());
  }
  index.build(5, 1);
  const Graph g = canopy::build_graph(*index.forest(), GraphBuildOptions{});
  canopy::check_graph_rows(g.view(), "built graph");
  for (int32_t i = 0; i < g.n_items; ++i) {
    const int32_t* row = g.view().row(i);
    if (i % 7 == 3) CHECK(row[0] == canopy::kNoNeighbour);
    for (int c = 0; c < g.width && row[c] != canopy::kNoNeighbour; ++c) CHECK(row[c] % 7 != 3);
  }
}

TEST(graph_refuses_metrics_without_a_metric_distance) {
  for (MetricKind m : {MetricKind::Dot, MetricKind::Hamming}) {
    Index index(m, 8);
    const auto items = clustered(50, 8, 1);
    for (size_t i = 0; i < items.size(); ++i) index.add_item(static_cast<int32_t>(i), items[i].data());
    index.build(2, 1);
    REQUIRE_THROWS_CODE(canopy::build_graph(*index.forest(), GraphBuildOptions{}), canopy::ErrorCode::InvalidArgument);
  }
  Fixture fx(MetricKind::Euclidean, 100, 4, 2);
  GraphBuildOptions bad;
  bad.width = 20;
  REQUIRE_THROWS_CODE(canopy::build_graph(*fx.forest, bad), canopy::ErrorCode::InvalidArgument);
  bad.width = 16;
  bad.prune_alpha = 0.5f;
  REQUIRE_THROWS_CODE(canopy::build_graph(*fx.forest, bad), canopy::ErrorCode::InvalidArgument);
}

TEST(graph_row_check_refuses_corrupt_rows) {
  Graph g;
  g.n_items = 3;
  g.width = 16;
  g.rows.assign(48, canopy::kNoNeighbour);
  g.rows[0] = 1;
  g.rows[16] = 0;
  g.rows[32] = 1;
  canopy::check_graph_rows(g.view(), "ok");
  auto refused = [](Graph bad) {
    REQUIRE_THROWS_CODE(canopy::check_graph_rows(bad.view(), "bad"), canopy::ErrorCode::BadFile);
  };
  Graph out_of_range = g;
  out_of_range.rows[1] = 3;
  refused(out_of_range);
  Graph negative = g;
  negative.rows[1] = -2;
  refused(negative);
  Graph self = g;
  self.rows[17] = 1;
  refused(self);
  Graph repeat = g;
  repeat.rows[1] = 1;
  refused(repeat);
  Graph after_padding = g;
  after_padding.rows[5] = 2;
  refused(after_padding);
  Graph bad_width = g;
  bad_width.width = 12;
  refused(bad_width);
}

// ---------------------------------------------------------------- the sidecar section

namespace {

std::shared_ptr<const canopy::Sidecar> sidecar_with(const canopy::Forest& forest, std::vector<canopy::SectionData> sections,
                                                     const std::string& name) {
  const std::string path = canopy_test::temp_dir() + "/" + name;
  const canopy::ForestIdentity id = canopy::ForestIdentity::of(forest);
  canopy::write_sidecar(path, id, sections);
  return canopy::Sidecar::load(path, id, false);
}

}  // namespace

TEST(graph_section_round_trips_through_a_sidecar) {
  Fixture fx(MetricKind::Euclidean, 2000, 16);
  const Graph built = canopy::build_graph(*fx.forest, GraphBuildOptions{});
  auto loaded = canopy::graph_of_sidecar(sidecar_with(*fx.forest, {canopy::graph_section(built)}, "g.codes"), *fx.forest);
  CHECK(loaded != nullptr);
  CHECK(loaded->n_items == built.n_items && loaded->width == built.width);
  CHECK(std::equal(built.rows.begin(), built.rows.end(), loaded->view().rows));
  CHECK(reinterpret_cast<uintptr_t>(loaded->view().rows) % 64 == 0);
  GraphQuery gq;
  gq.ef = 32;
  for (const auto& q : queries(fx, 10)) CHECK(graph_ids(*fx.forest, built, q, gq) == graph_ids(*fx.forest, *loaded, q, gq));
  // A sidecar without the section has no graph.
  CHECK(canopy::graph_of_sidecar(sidecar_with(*fx.forest, {}, "none.codes"), *fx.forest) == nullptr);
}

TEST(corrupt_graph_sections_are_refused) {
  Fixture fx(MetricKind::Angular, 300, 8, 3);
  const Graph built = canopy::build_graph(*fx.forest, GraphBuildOptions{});
  int case_number = 0;
  auto refused = [&](canopy::SectionData s) {
    auto sidecar = sidecar_with(*fx.forest, {std::move(s)}, "bad" + std::to_string(case_number++) + ".codes");
    REQUIRE_THROWS_CODE(canopy::graph_of_sidecar(sidecar, *fx.forest), canopy::ErrorCode::BadFile);
  };
  auto id_at = [](canopy::SectionData& s, size_t i) { return reinterpret_cast<int32_t*>(s.bytes.data()) + i; };
  canopy::SectionData s = canopy::graph_section(built);
  *id_at(s, 0) = 300;  // out of range
  refused(s);
  s = canopy::graph_section(built);
  *id_at(s, 1) = -7;
  refused(s);
  s = canopy::graph_section(built);
  *id_at(s, static_cast<size_t>(built.width) + 0) = 1;  // row 1 names item 1
  refused(s);
  s = canopy::graph_section(built);
  *id_at(s, 1) = *id_at(s, 0);  // a repeat
  refused(s);
  s = canopy::graph_section(built);
  s.bytes.resize(s.bytes.size() - 4);  // size mismatch
  refused(s);
  s = canopy::graph_section(built);
  s.params[0] = 32;  // bad row width for the size
  refused(s);
  s = canopy::graph_section(built);
  s.params[0] = 8;  // below 16
  refused(s);
  s = canopy::graph_section(built);
  s.params[0] = 20;  // not a multiple of 8
  refused(s);
  s = canopy::graph_section(built);
  s.params[1] = 299;  // another forest's item count
  refused(s);
  s = canopy::graph_section(built);
  s.params[0] = 0;  // no width
  refused(s);
  s = canopy::graph_section(built);
  s.params[0] = canopy::kGraphMaxWidth + 16;  // wider than any graph is built
  s.bytes.resize(4 * 300 * static_cast<size_t>(s.params[0]), 0xff);
  refused(s);
  s = canopy::graph_section(built);
  {
    // Row 0 padded early, then naming an item after its padding.
    int32_t* row0 = id_at(s, 0);
    int c = 0;
    while (c < built.width && row0[c] != canopy::kNoNeighbour) ++c;
    if (c < built.width - 1) {
      row0[c + 1] = row0[0];
      row0[0] = canopy::kNoNeighbour;
    } else {
      row0[1] = canopy::kNoNeighbour;
    }
  }
  refused(s);
  // A dot forest cannot have a graph, whatever the section holds.
  Index dot(MetricKind::Dot, 8);
  const auto items = clustered(300, 8, 4);
  for (size_t i = 0; i < items.size(); ++i) dot.add_item(static_cast<int32_t>(i), items[i].data());
  dot.build(3, 1);
  REQUIRE_THROWS_CODE(canopy::graph_of_sidecar(sidecar_with(*dot.forest(), {canopy::graph_section(built)}, "dot.codes"), *dot.forest()),
                      canopy::ErrorCode::BadFile);
}
