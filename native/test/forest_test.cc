// Build, search, save, load and on-disk build across all metrics.
#include <cmath>
#include <fstream>
#include <random>
#include <vector>

#include "index.h"
#include "test_main.h"

using canopy::Index;
using canopy::MetricKind;

namespace {

struct Hits {
  std::vector<int32_t> ids;
  std::vector<float> distances;
};

Hits search(const canopy::Forest& f, const std::vector<float>& q, size_t k, int64_t search_k = -1) {
  Hits h;
  h.ids.resize(f.result_capacity(k));
  h.distances.resize(h.ids.size());
  const size_t n = f.search_vector(q.data(), k, search_k, h.ids.data(), h.distances.data());
  h.ids.resize(n);
  h.distances.resize(n);
  return h;
}

std::vector<std::vector<float>> random_vectors(size_t n, int dim, bool bits, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> normal;
  std::vector<std::vector<float>> out(n, std::vector<float>(dim));
  for (auto& v : out) {
    for (auto& x : v) x = bits ? static_cast<float>(g() & 1) : normal(g);
  }
  return out;
}

constexpr MetricKind kAll[] = {MetricKind::Angular, MetricKind::Euclidean, MetricKind::Manhattan, MetricKind::Dot,
                               MetricKind::Hamming};

}  // namespace

TEST(angular_small_cases_match_annoy) {
  Index index(MetricKind::Angular, 3);
  const float items[3][3] = {{0, 0, 1}, {0, 1, 0}, {1, 0, 0}};
  for (int i = 0; i < 3; ++i) index.add_item(i, items[i]);
  index.build(10, 1);
  auto f = index.forest();
  CHECK((search(*f, {3, 2, 1}, 3).ids == std::vector<int32_t>{2, 1, 0}));
  CHECK((search(*f, {1, 2, 3}, 3).ids == std::vector<int32_t>{0, 1, 2}));
  CHECK((search(*f, {2, 0, 1}, 3).ids == std::vector<int32_t>{2, 0, 1}));
}

TEST(euclidean_distances_match_annoy) {
  Index index(MetricKind::Euclidean, 3);
  const float items[3][3] = {{0, 0, 2}, {0, 1, 1}, {1, 0, 0}};
  for (int i = 0; i < 3; ++i) index.add_item(i, items[i]);
  index.build(10, 1);
  auto f = index.forest();
  const Hits h = search(*f, {2, 2, 2}, 3);
  CHECK((h.ids == std::vector<int32_t>{1, 0, 2}));
  CHECK(std::fabs(h.distances[0] - std::sqrt(6.0f)) < 1e-6f);
  CHECK(std::fabs(h.distances[2] - 3.0f) < 1e-6f);
  CHECK(std::fabs(f->get_distance(0, 2) - std::sqrt(5.0f)) < 1e-6f);
}

TEST(dot_returns_inner_products_best_first) {
  Index index(MetricKind::Dot, 3);
  const float items[3][3] = {{0, 0, 2}, {0, 1, 1}, {1, 0, 0}};
  for (int i = 0; i < 3; ++i) index.add_item(i, items[i]);
  index.build(10, 1);
  const Hits h = search(*index.forest(), {2, 2, 2}, 3);
  CHECK((h.ids == std::vector<int32_t>{0, 1, 2}));
  CHECK((h.distances == std::vector<float>{4, 4, 2}));
}

TEST(hamming_counts_differing_bits_and_round_trips_bits) {
  Index index(MetricKind::Hamming, 70);
  std::vector<float> a(70, 0), b(70, 0);
  b[0] = b[65] = b[69] = 1;
  index.add_item(0, a.data());
  index.add_item(1, b.data());
  index.build(2, 1);
  CHECK(index.get_distance(0, 1) == 3.0f);
  std::vector<float> back(70);
  index.get_item(1, back.data());
  CHECK(back == b);
}

TEST(save_load_round_trip_gives_the_same_answers_for_every_metric) {
  for (MetricKind m : kAll) {
    const int dim = m == MetricKind::Hamming ? 100 : 12;
    const auto items = random_vectors(500, dim, m == MetricKind::Hamming, 7);
    Index index(m, dim, 42);
    for (size_t i = 0; i < items.size(); ++i) index.add_item(static_cast<int32_t>(i), items[i].data());
    index.build(8, 2);
    const auto built = index.forest();
    const std::string path = canopy_test::temp_dir() + "/round-" + canopy::metric_name(m) + ".ann";
    index.save(path);
    auto loaded = Index::load(path, m, dim, true);
    CHECK(loaded->n_items() == 500);
    CHECK(loaded->n_trees() == 8);
    for (size_t q = 0; q < 20; ++q) {
      const Hits a = search(*built, items[q], 10, 200);
      const Hits b = search(*loaded->forest(), items[q], 10, 200);
      CHECK(a.ids == b.ids);
      CHECK(a.distances == b.distances);
      // Each item is its own nearest neighbour (or tied with one); not so for inner products.
      if (m != MetricKind::Dot) {
        CHECK(!b.ids.empty() && (b.ids[0] == static_cast<int32_t>(q) || b.distances[0] == b.distances[1]));
      }
    }
    // The saved index keeps answering, now from the mapped file.
    CHECK(search(*index.forest(), items[3], 5).ids == search(*built, items[3], 5).ids);
  }
}

TEST(on_disk_build_writes_the_same_file_as_an_in_memory_build) {
  const auto items = random_vectors(300, 8, false, 3);
  const std::string dir = canopy_test::temp_dir();
  Index mem(MetricKind::Euclidean, 8, 9);
  Index disk(MetricKind::Euclidean, 8, 9);
  disk.on_disk_build(dir + "/disk.ann");
  for (size_t i = 0; i < items.size(); ++i) {
    mem.add_item(static_cast<int32_t>(i), items[i].data());
    disk.add_item(static_cast<int32_t>(i), items[i].data());
  }
  mem.build(5, 1);
  disk.build(5, 1);
  mem.save(dir + "/mem.ann");
  disk.save(dir + "/disk.ann");  // no-op: the build wrote it
  std::ifstream a(dir + "/mem.ann", std::ios::binary), b(dir + "/disk.ann", std::ios::binary);
  const std::string ba((std::istreambuf_iterator<char>(a)), {}), bb((std::istreambuf_iterator<char>(b)), {});
  CHECK(!ba.empty());
  CHECK(ba == bb);
  auto loaded = Index::load(dir + "/disk.ann", MetricKind::Euclidean, 8, false);
  CHECK(search(*loaded->forest(), items[1], 3).ids == search(*mem.forest(), items[1], 3).ids);
}

TEST(holes_are_skipped_and_results_hold_only_items) {
  Index index(MetricKind::Angular, 4);
  const auto items = random_vectors(10, 4, false, 5);
  for (int i = 0; i < 10; ++i) index.add_item(1000 + i, items[i].data());
  index.build(20, 1);
  CHECK(index.n_items() == 1010);
  const Hits h = search(*index.forest(), items[0], 50, 100000);
  CHECK(h.ids.size() == 10);
  for (int32_t id : h.ids) CHECK(id >= 1000 && id < 1010);
}

TEST(auto_tree_count_stops_at_twice_the_items) {
  Index index(MetricKind::Euclidean, 4);
  const auto items = random_vectors(200, 4, false, 8);
  for (int i = 0; i < 200; ++i) index.add_item(i, items[i].data());
  index.build(-1, 2);
  CHECK(index.n_trees() >= 1);
  CHECK(index.forest()->n_nodes() >= 400);
}

TEST(multi_threaded_build_finds_each_item_first) {
  const auto items = random_vectors(400, 16, false, 11);
  Index index(MetricKind::Angular, 16);
  for (int i = 0; i < 400; ++i) index.add_item(i, items[i].data());
  index.build(12, 3);
  CHECK(index.n_trees() == 12);
  CHECK(index.trees_built() == 12);
  auto f = index.forest();
  std::vector<int32_t> ids(1);
  std::vector<float> d(1);
  int first = 0;
  for (int i = 0; i < 400; ++i) first += f->search_item(i, 1, 100000, ids.data(), d.data()) == 1 && ids[0] == i;
  CHECK(first == 400);
}

TEST(multi_threaded_on_disk_build_serves_from_its_file) {
  const auto items = random_vectors(2000, 8, false, 13);
  const std::string path = canopy_test::temp_dir() + "/threads-disk.ann";
  Index index(MetricKind::Manhattan, 8);
  index.on_disk_build(path);
  for (size_t i = 0; i < items.size(); ++i) index.add_item(static_cast<int32_t>(i), items[i].data());
  index.build(-1, 3);  // Annoy's rule, three threads growing the file at once
  auto loaded = Index::load(path, MetricKind::Manhattan, 8, false);
  CHECK(loaded->n_trees() == index.n_trees());
  CHECK(loaded->forest()->n_nodes() == index.forest()->n_nodes());
  std::vector<int32_t> ids(1);
  std::vector<float> d(1);
  int first = 0;
  for (int i = 0; i < 2000; i += 7) first += loaded->forest()->search_item(i, 1, 1000000, ids.data(), d.data()) == 1 && ids[0] == i;
  CHECK(first == (2000 + 6) / 7);
}
