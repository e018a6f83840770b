// Codes: recall through the codes against exact mode at the same search_k, for every metric;
// returned distances exact; refused sidecars; kernels equal across CPU levels.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "code_kernels.h"
#include "code_sections.h"
#include "codes.h"
#include "index.h"
#include "test_main.h"

using canopy::CodedForest;
using canopy::MetricKind;

namespace {

// A Gaussian mixture with uneven clusters: what recall on codes must survive.
std::vector<std::vector<float>> clustered(size_t n, int dim, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> normal;
  const int clusters = 12;
  std::vector<std::vector<float>> centres(clusters, std::vector<float>(dim));
  for (auto& c : centres) {
    for (auto& x : c) x = 3.0f * normal(g);
  }
  std::vector<std::vector<float>> out(n, std::vector<float>(dim));
  for (size_t i = 0; i < n; ++i) {
    const auto& c = centres[(i * i) % clusters];  // uneven sizes
    for (int j = 0; j < dim; ++j) out[i][j] = c[j] + normal(g);
  }
  return out;
}

// Sparse non-negative vectors, as MNIST's pixels: 40% of the coordinates set. Distances between
// them vary widely around the centroid, so 1-bit estimates filter well (MNIST: 2% passed).
std::vector<std::vector<float>> sparse(size_t n, int dim, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> uniform(0, 1);
  std::vector<std::vector<float>> out(n, std::vector<float>(dim));
  for (auto& v : out) {
    for (auto& x : v) x = uniform(g) < 0.4f ? 1 + uniform(g) : 0;
  }
  return out;
}

struct Built {
  std::unique_ptr<canopy::Index> index;
  std::shared_ptr<const CodedForest> coded;
  std::string codes_path;
  std::vector<std::vector<float>> items;
};

Built build(MetricKind metric, const std::vector<std::vector<float>>& items, const std::string& name,
            CodedForest::BinaryStep step = CodedForest::BinaryStep::Calibrate) {
  Built b;
  b.items = items;
  const int dim = static_cast<int>(items[0].size());
  b.index = std::make_unique<canopy::Index>(metric, dim);
  for (size_t i = 0; i < items.size(); ++i) b.index->add_item(static_cast<int32_t>(i), items[i].data());
  b.index->build(10, 1);
  b.codes_path = canopy_test::temp_dir() + "/" + name + ".codes";
  // The 1-bit step forced on needs the 1-bit codes the writer leaves out where they do not pay.
  const canopy::BinaryCodes binary = step == CodedForest::BinaryStep::Use ? canopy::BinaryCodes::Always : canopy::BinaryCodes::WhereUsed;
  canopy::write_codes(b.index->forest(), b.codes_path, canopy::kDefaultCodeSeed, binary);
  b.coded = CodedForest::load(b.index->forest(), b.codes_path, false, step);
  return b;
}


std::vector<int32_t> true_neighbours(const canopy::Forest& f, const std::vector<float>& q, size_t k) {
  // exact search over everything: search_k large enough to collect every item from every tree
  std::vector<int32_t> ids(f.result_capacity(k));
  std::vector<float> d(ids.size());
  const size_t n = f.search_vector(q.data(), k, int64_t{1} << 40, ids.data(), d.data());
  ids.resize(n);
  return ids;
}

double overlap(const std::vector<int32_t>& a, const std::vector<int32_t>& truth) {
  const std::set<int32_t> t(truth.begin(), truth.end());
  size_t hit = 0;
  for (int32_t id : a) hit += t.count(id);
  return truth.empty() ? 1.0 : static_cast<double>(hit) / static_cast<double>(truth.size());
}

}  // namespace

TEST(codes_recall_matches_exact_mode_at_the_same_search_k) {
  const size_t k = 10;
  const int64_t kSearchK = 2000;  // exact-mode recall 0.8-0.97 here
  using Step = CodedForest::BinaryStep;
  for (MetricKind metric : {MetricKind::Angular, MetricKind::Euclidean, MetricKind::Manhattan, MetricKind::Dot}) {
    Built b = build(metric, clustered(4000, 40, 11), std::string("recall-") + canopy::metric_name(metric), Step::Use);
    const auto& forest = *b.index->forest();
    // with and without the 1-bit step (manhattan has no 1-bit codes)
    const auto skipping = CodedForest::load(b.index->forest(), b.codes_path, false, Step::Skip);
    CHECK(b.coded->uses_binary_step() == (metric != MetricKind::Manhattan) && !skipping->uses_binary_step());
    const auto queries = clustered(100, 40, 99);
    double exact_recall = 0, coded_recall[2] = {0, 0};
    for (const auto& q : queries) {
      const std::vector<int32_t> truth = true_neighbours(forest, q, k);
      std::vector<int32_t> ids(k);
      std::vector<float> d(k);
      ids.resize(forest.search_vector(q.data(), k, kSearchK, ids.data(), d.data()));
      exact_recall += overlap(ids, truth);
      int path = 0;
      for (const CodedForest* coded : {b.coded.get(), skipping.get()}) {
        std::vector<int32_t> cids(k);
        std::vector<float> cd(k);
        cids.resize(coded->search_vector(q.data(), k, kSearchK, 0, cids.data(), cd.data()));
        coded_recall[path++] += overlap(cids, truth);
        // distances returned through the codes are the exact ones, best first
        for (size_t i = 1; i < cids.size(); ++i) CHECK(metric == MetricKind::Dot ? cd[i - 1] >= cd[i] : cd[i - 1] <= cd[i]);
      }
    }
    exact_recall /= static_cast<double>(queries.size());
    for (double& r : coded_recall) r /= static_cast<double>(queries.size());
    std::fprintf(stderr, "  %s: recall exact %.3f, codes %.3f (1-bit step) %.3f (without)\n", canopy::metric_name(metric),
                 exact_recall, coded_recall[0], coded_recall[1]);
    CHECK(coded_recall[0] >= exact_recall - 0.01);
    CHECK(coded_recall[1] >= exact_recall - 0.01);
  }
}

// And keep 1-bit codes in the sidecar only there: where the step does not pay, the file is smaller by
// the 1-bit section and still answers.
TEST(codes_use_the_1_bit_step_only_where_it_filters) {
  for (MetricKind metric : {MetricKind::Angular, MetricKind::Euclidean, MetricKind::Dot}) {
    const std::string name = canopy::metric_name(metric);
    const Built mixture = build(metric, clustered(4000, 64, 5), "calibrate-mixture-" + name);
    CHECK(!mixture.coded->uses_binary_step() && mixture.coded->views().centroid == nullptr);
    CHECK(mixture.coded->sidecar().find(canopy::SectionKind::Rotation) == nullptr);
    const Built sparse_items = build(metric, sparse(4000, 256, 5), "calibrate-sparse-" + name);
    CHECK(sparse_items.coded->uses_binary_step() && sparse_items.coded->views().centroid != nullptr);
    std::vector<int32_t> ids(10);
    std::vector<float> d(10);
    CHECK(mixture.coded->search_vector(mixture.items[7].data(), 10, 500, 0, ids.data(), d.data()) == 10 && (metric == MetricKind::Dot || ids[0] == 7));
  }
  CHECK(!build(MetricKind::Manhattan, sparse(4000, 256, 5), "calibrate-sparse-manhattan").coded->uses_binary_step());
}

TEST(codes_kernels_agree_across_levels) {
  using namespace canopy::code_kernels;
  std::mt19937 g(5);
  for (int n : {1, 7, 16, 33, 64, 100, 129, 784}) {
    std::vector<uint8_t> a(n), b(n);
    std::vector<int8_t> s(n);
    std::vector<float> q(n), scale(n);
    for (int i = 0; i < n; ++i) {
      a[i] = static_cast<uint8_t>(g());
      b[i] = static_cast<uint8_t>(g());
      s[i] = static_cast<int8_t>(g());
      q[i] = static_cast<float>(static_cast<int>(g() % 200) - 100) / 8.0f;
      scale[i] = static_cast<float>(1 + g() % 8) / 64.0f;
    }
    const Kernels scalar = kernels_for(Level::Scalar);
    for (Level level : {Level::Avx2, kKernels.level}) {
      const Kernels k = kernels_for(level);
      CHECK(k.dot_u8_s8(a.data(), s.data(), n) == scalar.dot_u8_s8(a.data(), s.data(), n));
      CHECK(k.sad_u8(a.data(), b.data(), n) == scalar.sad_u8(a.data(), b.data(), n));
      CHECK(k.dot_s8_f32(s.data(), q.data(), n) == scalar.dot_s8_f32(s.data(), q.data(), n));  // exact: multiples of 1/8
      const float l2 = scalar.l2_u8_f32(a.data(), scale.data(), q.data(), n);
      CHECK(std::fabs(k.l2_u8_f32(a.data(), scale.data(), q.data(), n) - l2) <= 1e-5f * l2);  // sums in another order
    }
  }
  for (int words : {1, 2, 8, 16}) {
    std::vector<uint64_t> bits(words), planes(4 * words);
    for (auto& w : bits) w = (uint64_t{g()} << 32) ^ g();
    for (auto& w : planes) w = (uint64_t{g()} << 32) ^ g();
    const MaskedSum want = kernels_for(Level::Scalar).masked_sum4(bits.data(), planes.data(), words);
    const MaskedSum got = kKernels.masked_sum4(bits.data(), planes.data(), words);
    CHECK(want.weighted == got.weighted && want.ones == got.ones);
  }
}

// The kernels that make codes: bit-identical at every level (a sidecar's bytes do not depend on the CPU
// that wrote it) and right by their definitions, not just alike.
TEST(code_making_kernels_are_right_and_identical_across_levels) {
  using namespace canopy::code_kernels;
  std::mt19937 g(9);
  const Kernels scalar = kernels_for(Level::Scalar);
  for (int n : {8, 16, 32, 64, 128, 256, 1024}) {
    const std::vector<float> ones(n, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(static_cast<int>(g() % 200) - 100);
    for (Level level : {Level::Scalar, Level::Avx2, kKernels.level}) {
      std::vector<float> got = v;
      kernels_for(level).rotation_round(got.data(), ones.data(), n);
      kernels_for(level).rotation_round(got.data(), ones.data(), n);  // H H = n I, exact on small integers
      for (int i = 0; i < n; ++i) CHECK(got[i] == static_cast<float>(n) * v[i]);
    }
    std::vector<float> fractions(n), factors(n);  // rounding happens: every level must round alike
    for (int i = 0; i < n; ++i) {
      fractions[i] = std::normal_distribution<float>()(g);
      factors[i] = (g() % 2 == 0 ? 1.0f : -1.0f) / std::sqrt(static_cast<float>(n));
    }
    std::vector<float> want = fractions;
    scalar.rotation_round(want.data(), factors.data(), n);
    for (Level level : {Level::Avx2, kKernels.level}) {
      std::vector<float> got = fractions;
      kernels_for(level).rotation_round(got.data(), factors.data(), n);
      CHECK(std::memcmp(got.data(), want.data(), sizeof(float) * n) == 0);
    }
  }
  for (int n : {64, 128, 1024}) {
    std::vector<float> r(n), c(n);
    for (int j = 0; j < n; ++j) {
      r[j] = std::normal_distribution<float>()(g);
      c[j] = j % 7 == 0 ? r[j] : std::normal_distribution<float>()(g);  // some differences exactly 0
    }
    std::vector<uint64_t> want_bits(n / 64), bits(n / 64, ~uint64_t{0});
    double squares = 0, lengths = 0;
    for (int j = 0; j < n; ++j) {
      const double d = r[j] - c[j];
      squares += d * d;
      lengths += std::fabs(d);
      if (d > 0) want_bits[j / 64] |= uint64_t{1} << (j % 64);
    }
    const SignSums want = scalar.sign_code(r.data(), c.data(), n, bits.data());
    CHECK(bits == want_bits);
    CHECK(std::fabs(want.squares - squares) <= 1e-12 * squares && std::fabs(want.lengths - lengths) <= 1e-12 * lengths);
    for (Level level : {Level::Avx2, kKernels.level}) {
      std::fill(bits.begin(), bits.end(), ~uint64_t{0});
      const SignSums got = kernels_for(level).sign_code(r.data(), c.data(), n, bits.data());
      CHECK(bits == want_bits && got.squares == want.squares && got.lengths == want.lengths);
    }
  }
  for (int n : {1, 7, 8, 33, 784}) {
    std::vector<float> x(n), offset(n), scale(n);
    for (int j = 0; j < n; ++j) {
      offset[j] = static_cast<float>(static_cast<int>(g() % 20) - 10);
      scale[j] = static_cast<float>(1 + g() % 8) / 4.0f;
      // Codes from -20 to 275 in steps of a half: ties, both clamps, and the odd NaN or infinity.
      x[j] = offset[j] + scale[j] * (static_cast<float>(static_cast<int>(g() % 591) - 40) / 2.0f);
      if (j % 11 == 3) x[j] = std::nanf("");
      if (j % 13 == 5) x[j] = (j % 2 == 0 ? 1 : -1) * std::numeric_limits<float>::infinity();
    }
    std::vector<uint8_t> want(n);
    scalar.quantize_u8(x.data(), offset.data(), scale.data(), n, want.data());
    for (int j = 0; j < n; ++j) {
      const float c = std::nearbyint((x[j] - offset[j]) / scale[j]);
      CHECK(want[j] == (std::isnan(c) ? 0 : static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, c)))));
    }
    for (Level level : {Level::Avx2, kKernels.level}) {
      std::vector<uint8_t> got(n);
      kernels_for(level).quantize_u8(x.data(), offset.data(), scale.data(), n, got.data());
      CHECK(got == want);
    }
    // Split normals: scale = largest / 127, so codes reach +-127 and ties fall on halves.
    const float scale_s8 = 0.25f;
    std::vector<int8_t> want_s8(n);
    for (int j = 0; j < n; ++j) x[j] = j % 11 == 3 ? std::nanf("") : static_cast<float>(static_cast<int>(g() % 1021) - 510) / 16.0f;
    scalar.quantize_s8(x.data(), scale_s8, n, want_s8.data());
    for (int j = 0; j < n; ++j) {
      const float c = std::nearbyint(x[j] / scale_s8);
      CHECK(want_s8[j] == (std::isnan(c) ? -127 : static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, c)))));
    }
    for (Level level : {Level::Avx2, kKernels.level}) {
      std::vector<int8_t> got(n);
      kernels_for(level).quantize_s8(x.data(), scale_s8, n, got.data());
      CHECK(got == want_s8);
    }
  }
}

TEST(hamming_codes_search_exactly) {
  canopy::Index index(MetricKind::Hamming, 70);
  std::mt19937 g(3);
  std::vector<float> v(70);
  for (int32_t i = 0; i < 300; ++i) {
    for (auto& x : v) x = static_cast<float>(g() & 1);
    index.add_item(i, v.data());
  }
  index.build(5, 1);
  const std::string path = canopy_test::temp_dir() + "/hamming.codes";
  canopy::write_codes(index.forest(), path, 1);
  const auto coded = CodedForest::load(index.forest(), path, false);
  std::vector<int32_t> a(10), b(10);
  std::vector<float> da(10), db(10);
  const size_t na = index.forest()->search_vector(v.data(), 10, -1, a.data(), da.data());
  const size_t nb = coded->search_vector(v.data(), 10, -1, 0, b.data(), db.data());
  CHECK(na == nb && a == b && da == db);
}

TEST(codes_with_bad_contents_are_refused_even_with_matching_hashes) {
  canopy::Index index(MetricKind::Euclidean, 8);
  const auto items = clustered(500, 8, 4);
  for (size_t i = 0; i < items.size(); ++i) index.add_item(static_cast<int32_t>(i), items[i].data());
  index.build(4, 1);
  const auto forest = index.forest();
  const canopy::ForestIdentity id = canopy::ForestIdentity::of(*forest);
  const std::string path = canopy_test::temp_dir() + "/bad-contents.codes";
  auto refused = [&](std::vector<canopy::SectionData> sections, const std::string& why) {
    canopy::write_sidecar(path, id, sections);
    try {
      CodedForest::load(forest, path, false);
      canopy_test::record_failure(__FILE__, __LINE__, "accepted; expected " + why);
    } catch (const canopy::Error& e) {
      CHECK(e.code() == canopy::ErrorCode::BadFile);
      if (std::string(e.what()).find(why) == std::string::npos) canopy_test::record_failure(__FILE__, __LINE__, e.what());
    }
  };
  const std::vector<canopy::SectionData> good = canopy::build_code_sections(*forest, 9);
  auto with = [&](canopy::SectionKind kind, auto change) {
    std::vector<canopy::SectionData> sections = good;
    for (auto& s : sections) {
      if (s.kind == static_cast<uint32_t>(kind)) change(s);
    }
    return sections;
  };
  using K = canopy::SectionKind;
  const size_t roots_bytes = canopy::pad64(sizeof(int32_t) * forest->roots().size());
  // split 0's first child made split 0 itself: a cycle
  refused(with(K::Splits, [&](auto& s) { std::memset(s.bytes.data() + roots_bytes, 0, 4); }), "cycle through split 0");
  refused(with(K::Splits, [&](auto& s) { s.bytes.data()[roots_bytes + 3] = 0x7f; }), "split reference");
  refused(with(K::Splits, [&](auto& s) { s.bytes.pop_back(); }), "parameters say");
  refused(with(K::ScalarCodes, [&](auto& s) { s.params[0] = 9; }), "bad dim");
  refused(with(K::BinaryCodes, [&](auto& s) { std::memset(s.bytes.data(), 0xff, 4); }), "centroid");
  refused(with(K::Rotation, [&](auto& s) { s.bytes[5] = 2; }), "sign byte");
  std::vector<canopy::SectionData> missing = good;
  missing.pop_back();
  refused(missing, "has no splits section");
  auto without = [&](std::initializer_list<K> kinds) {
    std::vector<canopy::SectionData> sections;
    for (const auto& s : good) {
      if (std::none_of(kinds.begin(), kinds.end(), [&](K k) { return s.kind == static_cast<uint32_t>(k); })) sections.push_back(s);
    }
    return sections;
  };
  refused(without({K::BinaryCodes}), "rotation section without binary codes");
  refused(without({K::Rotation}), "binary codes without a rotation section");
  canopy::write_sidecar(path, id, without({K::Rotation, K::BinaryCodes}));  // 1-bit codes are optional
  CHECK(CodedForest::load(forest, path, false)->views().centroid == nullptr);
  CodedForest::load(forest, (canopy::write_sidecar(path, id, good), path), false);  // and the untouched ones load
}

// At dim 100 a record padded to 128 bytes touches two cache lines, where a packed one straddles three
// more often than not; at dim 40 padding would cost more than it saves. Sidecars written under another
// rule (packed, or padded where this one packs) still load and answer the same.
TEST(codes_records_padded_to_whole_lines_where_cheap_and_packed_ones_still_load) {
  using K = canopy::SectionKind;
  CHECK(canopy::scalar_record_bytes(100) == 128 && canopy::split_record_bytes(100) == 128);
  CHECK(canopy::scalar_record_bytes(128) == 128 && canopy::split_record_bytes(128) == 144);  // 3 lines either way
  CHECK(canopy::scalar_record_bytes(40) == 40);  // padding would cost more than a third
  CHECK(canopy::scalar_record_bytes(784) == 784 && canopy::split_record_bytes(784) == 800);  // saves 1-3% of lines
  // The same sections with every record stored at another size: cut back to its packed size, or
  // zero-padded to whole lines.
  auto resized = [](const canopy::Forest& forest, int dim, bool pad) {
    std::vector<canopy::SectionData> sections = canopy::build_code_sections(forest, canopy::kDefaultCodeSeed);
    auto resize = [&](canopy::SectionData& s, int size_param, size_t header, size_t packed) {
      const size_t from = s.params[size_param];
      const size_t to = pad ? canopy::pad64(packed) : packed;
      std::vector<uint8_t> bytes(s.bytes.begin(), s.bytes.begin() + static_cast<std::ptrdiff_t>(header));
      for (size_t at = header; at < s.bytes.size(); at += from) {
        bytes.insert(bytes.end(), s.bytes.begin() + static_cast<std::ptrdiff_t>(at), s.bytes.begin() + static_cast<std::ptrdiff_t>(at + packed));
        bytes.resize(bytes.size() + (to - packed), 0);
      }
      s.bytes = std::move(bytes);
      s.params[size_param] = static_cast<uint32_t>(to);
    };
    for (auto& s : sections) {
      if (s.kind == static_cast<uint32_t>(K::ScalarCodes)) {
        resize(s, canopy::scalar_params::kRecordBytes, 2 * canopy::pad64(4 * dim), canopy::packed_scalar_record_bytes(dim));
      }
      if (s.kind == static_cast<uint32_t>(K::Splits)) {
        resize(s, canopy::split_params::kRecordBytes, canopy::pad64(4 * forest.roots().size()), canopy::packed_split_record_bytes(dim));
      }
    }
    return sections;
  };
  auto same_answers = [](const CodedForest& a, const CodedForest& b, int dim) {
    for (const auto& q : clustered(20, dim, 22)) {
      std::vector<int32_t> ia(10), ib(10);
      std::vector<float> da(10), db(10);
      ia.resize(a.search_vector(q.data(), 10, 1000, 0, ia.data(), da.data()));
      ib.resize(b.search_vector(q.data(), 10, 1000, 0, ib.data(), db.data()));
      CHECK(ia == ib && da == db);
    }
  };
  const std::string path = canopy_test::temp_dir() + "/resized.codes";
  const Built narrow = build(MetricKind::Angular, clustered(2000, 40, 23), "packed-40");
  canopy::write_sidecar(path, canopy::ForestIdentity::of(*narrow.index->forest()), resized(*narrow.index->forest(), 40, true));
  const auto padded = CodedForest::load(narrow.index->forest(), path, false);
  CHECK(padded->views().scalar_record_size == 64 && narrow.coded->views().scalar_record_size == 40);
  same_answers(*narrow.coded, *padded, 40);

  Built b = build(MetricKind::Angular, clustered(3000, 100, 21), "padded");
  const auto forest = b.index->forest();
  const canopy::ForestIdentity id = canopy::ForestIdentity::of(*forest);
  std::vector<canopy::SectionData> packed = resized(*forest, 100, false);
  canopy::write_sidecar(path, id, packed);
  const auto old = CodedForest::load(forest, path, false);
  CHECK(old->views().scalar_record_size == 100 && b.coded->views().scalar_record_size == 128);
  same_answers(*b.coded, *old, 100);
  // Any other record size is refused.
  for (auto& s : packed) {
    if (s.kind == static_cast<uint32_t>(K::ScalarCodes)) s.params[canopy::scalar_params::kRecordBytes] = 112;
  }
  canopy::write_sidecar(path, id, packed);
  try {
    CodedForest::load(forest, path, false);
    canopy_test::record_failure(__FILE__, __LINE__, "a record size of 112 was accepted");
  } catch (const canopy::Error& e) {
    CHECK(e.code() == canopy::ErrorCode::BadFile && std::string(e.what()).find("bad record size") != std::string::npos);
  }
}
