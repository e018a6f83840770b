// Bad input and bad files: every case is an Error with the right code, never a crash.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "index.h"
#include "test_main.h"

using canopy::ErrorCode;
using canopy::Index;
using canopy::MetricKind;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// An euclidean dim-2 index (node size 24) with 100 items and 3 trees, saved; returns its bytes.
std::string saved_index(const std::string& path) {
  Index index(MetricKind::Euclidean, 2);
  for (int i = 0; i < 100; ++i) {
    const float v[2] = {static_cast<float>(i % 10), static_cast<float>(i / 10)};
    index.add_item(i, v);
  }
  index.build(3, 1);
  index.save(path);
  return read_file(path);
}

void put_i32(std::string& bytes, size_t offset, int32_t value) { std::memcpy(&bytes[offset], &value, 4); }

bool message_has(const std::string& path, MetricKind m, int dim, const std::string& needle) {
  try {
    Index::load(path, m, dim, false);
  } catch (const canopy::Error& e) {
    return std::string(e.what()).find(needle) != std::string::npos;
  }
  return false;
}

}  // namespace

TEST(missing_empty_and_missized_files_are_refused) {
  const std::string dir = canopy_test::temp_dir();
  REQUIRE_THROWS_CODE(Index::load(dir + "/nope.ann", MetricKind::Angular, 3, false), ErrorCode::IoError);
  write_file(dir + "/empty.ann", "");
  REQUIRE_THROWS_CODE(Index::load(dir + "/empty.ann", MetricKind::Angular, 3, false), ErrorCode::BadFile);
  const std::string bytes = saved_index(dir + "/good.ann");
  write_file(dir + "/truncated.ann", bytes.substr(0, bytes.size() - 5));
  REQUIRE_THROWS_CODE(Index::load(dir + "/truncated.ann", MetricKind::Euclidean, 2, false), ErrorCode::BadFile);
  CHECK(message_has(dir + "/truncated.ann", MetricKind::Euclidean, 2, "node size 24"));
  CHECK(message_has(dir + "/truncated.ann", MetricKind::Euclidean, 2, std::to_string(bytes.size() - 5)));
  // Wrong dim: 24 does not divide into nodes of 28 bytes.
  REQUIRE_THROWS_CODE(Index::load(dir + "/good.ann", MetricKind::Euclidean, 3, false), ErrorCode::BadFile);
  REQUIRE_THROWS_CODE(Index::load(dir, MetricKind::Euclidean, 2, false), ErrorCode::IoError);
}

TEST(out_of_range_children_negative_counts_and_cycles_are_refused) {
  const std::string dir = canopy_test::temp_dir();
  const std::string good = saved_index(dir + "/base.ann");
  const size_t s = 24;
  const size_t n_nodes = good.size() / s;
  const size_t root = n_nodes - 1;  // a root copy: a split (n_descendants 100 > K = 5)
  {
    std::string bad = good;
    put_i32(bad, root * s + 8, static_cast<int32_t>(n_nodes + 7));  // children[0]
    write_file(dir + "/child.ann", bad);
    REQUIRE_THROWS_CODE(Index::load(dir + "/child.ann", MetricKind::Euclidean, 2, false), ErrorCode::BadFile);
    CHECK(message_has(dir + "/child.ann", MetricKind::Euclidean, 2, "child"));
  }
  {
    std::string bad = good;
    put_i32(bad, root * s + 12, -3);  // children[1]
    write_file(dir + "/neg.ann", bad);
    REQUIRE_THROWS_CODE(Index::load(dir + "/neg.ann", MetricKind::Euclidean, 2, false), ErrorCode::BadFile);
  }
  {
    std::string bad = good;
    put_i32(bad, root * s + 8, static_cast<int32_t>(root));  // the root is its own child
    write_file(dir + "/cycle.ann", bad);
    REQUIRE_THROWS_CODE(Index::load(dir + "/cycle.ann", MetricKind::Euclidean, 2, false), ErrorCode::BadFile);
    CHECK(message_has(dir + "/cycle.ann", MetricKind::Euclidean, 2, "cycle"));
  }
  {
    // A bucket (first tree node after the items, 2..K ids) holding an id past the end.
    std::string bad = good;
    for (size_t i = 100; i < n_nodes; ++i) {
      int32_t n;
      std::memcpy(&n, &bad[i * s], 4);
      if (n >= 2 && n <= 5) {
        put_i32(bad, i * s + 8, 1 << 30);
        break;
      }
    }
    write_file(dir + "/bucket.ann", bad);
    REQUIRE_THROWS_CODE(Index::load(dir + "/bucket.ann", MetricKind::Euclidean, 2, false), ErrorCode::BadFile);
  }
  {
    // Roots claiming more items than the file has nodes.
    std::string bad = good;
    put_i32(bad, root * s, static_cast<int32_t>(n_nodes + 1));
    write_file(dir + "/roots.ann", bad);
    REQUIRE_THROWS_CODE(Index::load(dir + "/roots.ann", MetricKind::Euclidean, 2, false), ErrorCode::BadFile);
  }
}

TEST(hamming_split_bit_outside_the_vector_is_refused) {
  const std::string dir = canopy_test::temp_dir();
  Index index(MetricKind::Hamming, 64);
  for (int i = 0; i < 50; ++i) {
    std::vector<float> v(64, 0);
    for (int b = 0; b < 64; ++b) v[b] = static_cast<float>((i >> (b % 6)) & 1);
    index.add_item(i, v.data());
  }
  index.build(2, 1);
  index.save(dir + "/ham.ann");
  std::string bytes = read_file(dir + "/ham.ann");
  const size_t s = 24, root = bytes.size() / s - 1;
  const uint64_t far = 1000;
  std::memcpy(&bytes[root * s + 16], &far, 8);
  write_file(dir + "/ham-bad.ann", bytes);
  REQUIRE_THROWS_CODE(Index::load(dir + "/ham-bad.ann", MetricKind::Hamming, 64, false), ErrorCode::BadFile);
}

TEST(state_errors) {
  const float v[2] = {1, 2};
  Index index(MetricKind::Angular, 2);
  REQUIRE_THROWS_CODE(index.forest(), ErrorCode::BadState);        // search before build
  REQUIRE_THROWS_CODE(index.save("/tmp/x.ann"), ErrorCode::BadState);  // save before build
  REQUIRE_THROWS_CODE(index.add_item(-1, v), ErrorCode::OutOfRange);
  index.add_item(0, v);
  index.add_item(1, v);
  REQUIRE_THROWS_CODE(index.build(0, 1), ErrorCode::InvalidArgument);
  REQUIRE_THROWS_CODE(index.build(2, 0), ErrorCode::InvalidArgument);
  index.build(2, 1);
  REQUIRE_THROWS_CODE(index.build(2, 1), ErrorCode::BadState);      // build twice
  REQUIRE_THROWS_CODE(index.add_item(2, v), ErrorCode::BadState);   // add after build
  REQUIRE_THROWS_CODE(index.on_disk_build("/tmp/y.ann"), ErrorCode::BadState);
  auto f = index.forest();
  std::vector<int32_t> ids(2);
  std::vector<float> d(2);
  REQUIRE_THROWS_CODE(f->search_item(2, 1, -1, ids.data(), d.data()), ErrorCode::OutOfRange);
  REQUIRE_THROWS_CODE(f->get_distance(0, -1), ErrorCode::OutOfRange);
  index.unload();
  REQUIRE_THROWS_CODE(index.forest(), ErrorCode::BadState);         // use after unload
  REQUIRE_THROWS_CODE(index.unload(), ErrorCode::BadState);
  // A snapshot taken before unload keeps working.
  CHECK(f->search_vector(v, 2, -1, ids.data(), d.data()) == 2);
  REQUIRE_THROWS_CODE(Index(MetricKind::Angular, 0), ErrorCode::InvalidArgument);
  REQUIRE_THROWS_CODE(canopy::parse_metric("cosine"), ErrorCode::InvalidArgument);
  Index late(MetricKind::Angular, 2);
  late.add_item(0, v);
  REQUIRE_THROWS_CODE(late.on_disk_build("/tmp/z.ann"), ErrorCode::BadState);  // after add_item
  REQUIRE_THROWS_CODE(Index(MetricKind::Angular, 2).on_disk_build("/nonexistent-dir/x.ann"), ErrorCode::IoError);
}

TEST(randomly_corrupted_files_load_with_an_error_or_search_safely) {
  const std::string dir = canopy_test::temp_dir();
  for (MetricKind m : {MetricKind::Angular, MetricKind::Dot, MetricKind::Hamming}) {
    const int dim = m == MetricKind::Hamming ? 80 : 3;
    Index index(m, dim);
    std::vector<float> v(dim);
    for (int i = 0; i < 60; ++i) {
      for (int d = 0; d < dim; ++d) v[d] = static_cast<float>((i * 7 + d * 3) % 11) - 5;
      index.add_item(i, v.data());
    }
    index.build(3, 1);
    index.save(dir + "/fuzz-base.ann");
    const std::string good = read_file(dir + "/fuzz-base.ann");
    uint32_t state = 12345;
    auto rnd = [&] { return state = state * 1664525u + 1013904223u; };
    for (int round = 0; round < 150; ++round) {
      std::string bad = good;
      for (int flips = 0; flips < 1 + round % 4; ++flips) {
        const size_t at = rnd() % (bad.size() / 4) * 4;
        const int32_t value = static_cast<int32_t>(rnd()) >> (rnd() % 24);  // small and large values
        std::memcpy(&bad[at], &value, 4);
      }
      write_file(dir + "/fuzz.ann", bad);
      try {
        auto loaded = Index::load(dir + "/fuzz.ann", m, dim, false);
        auto f = loaded->forest();
        std::vector<int32_t> ids(f->result_capacity(10));
        std::vector<float> d(ids.size());
        f->search_vector(v.data(), 10, -1, ids.data(), d.data());
        f->search_vector(v.data(), 10, 100000, ids.data(), d.data());
      } catch (const canopy::Error& e) {
        CHECK(e.code() == ErrorCode::BadFile);
      }
    }
  }
}
