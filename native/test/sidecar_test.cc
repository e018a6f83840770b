// The sidecar container: header, section table, and the loader's refusals (stale, foreign, truncated,
// corrupt, unknown required section) with a BAD_FILE error naming the file.
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

#include "index.h"
#include "sidecar.h"
#include "test_main.h"

using canopy::ErrorCode;
using canopy::ForestIdentity;
using canopy::MetricKind;
using canopy::SectionData;
using canopy::Sidecar;

namespace {

std::shared_ptr<const canopy::Forest> small_forest(MetricKind metric, int dim, uint64_t seed) {
  canopy::Index index(metric, dim, seed);
  std::mt19937 g(7);
  std::normal_distribution<float> normal;
  std::vector<float> v(static_cast<size_t>(dim));
  for (int32_t i = 0; i < 200; ++i) {
    for (auto& x : v) x = normal(g);
    index.add_item(i, v.data());
  }
  index.build(5, 1);
  return index.forest();
}

std::vector<uint8_t> bytes_of(size_t n, uint8_t start) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(start + i);
  return b;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// Loading must fail with BAD_FILE, name the file and say `why`.
void check_refused(const std::string& path, const ForestIdentity& forest, const std::string& why) {
  try {
    Sidecar::load(path, forest, false);
    canopy_test::record_failure(__FILE__, __LINE__, path + " was accepted; expected: " + why);
  } catch (const canopy::Error& e) {
    const std::string message = e.what();
    CHECK(e.code() == ErrorCode::BadFile);
    CHECK(message.find(path) != std::string::npos);
    if (message.find(why) == std::string::npos) canopy_test::record_failure(__FILE__, __LINE__, "'" + message + "' lacks '" + why + "'");
  }
}

const std::vector<SectionData> kSections = {
    {static_cast<uint32_t>(canopy::SectionKind::Rotation), canopy::kSectionRequired, {1, 2, 3, 4, 5, 6, 7, 8}, bytes_of(100, 1)},
    {static_cast<uint32_t>(canopy::SectionKind::Splits), canopy::kSectionRequired, {9}, bytes_of(64, 50)},
    {999, 0, {}, bytes_of(3, 9)},  // a kind from the future, optional
};

}  // namespace

TEST(sidecar_round_trip_keeps_sections_aligned) {
  const auto forest = small_forest(MetricKind::Euclidean, 8, 1);
  const ForestIdentity id = ForestIdentity::of(*forest);
  const std::string path = canopy_test::temp_dir() + "/round.codes";
  canopy::write_sidecar(path, id, kSections);
  const auto sidecar = Sidecar::load(path, id, false);
  CHECK(sidecar->sections().size() == 3);
  const auto* rotation = sidecar->find(canopy::SectionKind::Rotation);
  CHECK(rotation != nullptr && rotation->size == 100 && rotation->params[7] == 8);
  CHECK(rotation != nullptr && std::vector<uint8_t>(rotation->data, rotation->data + 100) == kSections[0].bytes);
  for (const auto& s : sidecar->sections()) CHECK(reinterpret_cast<uintptr_t>(s.data) % 64 == 0);
  CHECK(sidecar->find(canopy::SectionKind::BinaryCodes) == nullptr);
  CHECK(read_file(path).size() % 64 == 0);
}

TEST(sidecar_of_another_forest_is_refused) {
  const auto forest = small_forest(MetricKind::Euclidean, 8, 1);
  const std::string path = canopy_test::temp_dir() + "/other.codes";
  canopy::write_sidecar(path, ForestIdentity::of(*forest), kSections);
  check_refused(path, ForestIdentity::of(*small_forest(MetricKind::Euclidean, 8, 2)), "is stale");
  check_refused(path, ForestIdentity::of(*small_forest(MetricKind::Angular, 8, 1)), "belongs to another forest");
  check_refused(path, ForestIdentity::of(*small_forest(MetricKind::Euclidean, 9, 1)), "belongs to another forest");
}

TEST(sidecar_truncated_anywhere_is_refused) {
  const auto forest = small_forest(MetricKind::Angular, 6, 1);
  const ForestIdentity id = ForestIdentity::of(*forest);
  const std::string path = canopy_test::temp_dir() + "/whole.codes";
  canopy::write_sidecar(path, id, kSections);
  const std::vector<uint8_t> whole = read_file(path);
  const std::string cut = canopy_test::temp_dir() + "/cut.codes";
  for (size_t n : {size_t{0}, size_t{10}, size_t{63}, size_t{64}, size_t{200}, size_t{256}, size_t{300}, whole.size() - 62}) {
    write_file(cut, std::vector<uint8_t>(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(n)));
    check_refused(cut, id, n < 64 ? "shorter than the 64-byte header" : n < 256 ? "too short for its table" : "is truncated");
  }
}

TEST(sidecar_with_any_flipped_byte_is_refused) {
  const auto forest = small_forest(MetricKind::Dot, 5, 1);
  const ForestIdentity id = ForestIdentity::of(*forest);
  const std::string path = canopy_test::temp_dir() + "/flip.codes";
  canopy::write_sidecar(path, id, kSections);
  const std::vector<uint8_t> whole = read_file(path);
  const std::string bad = canopy_test::temp_dir() + "/flipped.codes";
  // magic, version, metric, forest hash, header hash, a table entry, inside the first section
  const std::pair<size_t, const char*> flips[] = {{0, "no CANOPYSC magic"}, {8, "format version"}, {16, "header hash"},
                                                  {40, "header hash"}, {60, "header hash"}, {100, "header hash"},
                                                  {256 + 17, "does not match its hash"}};
  for (const auto& [at, why] : flips) {
    std::vector<uint8_t> b = whole;
    b[at] ^= 0x40;
    write_file(bad, b);
    check_refused(bad, id, why);
  }
}

TEST(sidecar_needing_an_unknown_section_is_refused) {
  const auto forest = small_forest(MetricKind::Euclidean, 4, 1);
  const ForestIdentity id = ForestIdentity::of(*forest);
  const std::string path = canopy_test::temp_dir() + "/future.codes";
  canopy::write_sidecar(path, id, {{999, canopy::kSectionRequired, {}, bytes_of(10, 0)}});
  check_refused(path, id, "which this build does not know");
  REQUIRE_THROWS_CODE(Sidecar::load(canopy_test::temp_dir() + "/missing.codes", id, false), ErrorCode::IoError);
}

TEST(sidecar_with_a_retired_section_is_refused_with_a_rebuild_hint) {
  const auto forest = small_forest(MetricKind::Euclidean, 4, 1);
  const ForestIdentity id = ForestIdentity::of(*forest);
  const std::string path = canopy_test::temp_dir() + "/retired.codes";
  const auto retired = static_cast<uint32_t>(canopy::SectionKind::ScalarCodesWithFactor);
  CHECK(canopy::is_retired_section_kind(retired) && !canopy::is_known_section_kind(retired));
  canopy::write_sidecar(path, id, {{retired, canopy::kSectionRequired, {}, bytes_of(10, 0)}});
  check_refused(path, id, "no longer reads: rebuild the sidecar");
}
