// Loading and checking a sidecar's code sections, and the coded forest's searches.
#include "codes.h"

#include <cmath>
#include <cstring>

#include "acyclic_walk.h"
#include "code_sections.h"
#include "coded_search.h"

namespace canopy {
namespace {

// Checks one code section's parameters, size and contents; views go into `views`.
class SectionChecker {
 public:
  SectionChecker(const Forest& forest, const Sidecar& sidecar) : forest_(forest), sidecar_(sidecar) {}

  void rotation(const SectionView& s, CodeViews* views) const {
    const uint32_t padded = s.params[rotation_params::kPadded];
    const int dim = forest_.layout().dim;
    expect(s, padded == static_cast<uint32_t>(Rotation::padded_dim(dim)), "padded size " + std::to_string(padded) + " for dim " + std::to_string(dim));
    expect(s, s.params[rotation_params::kRounds] == Rotation::kRounds, "rounds " + std::to_string(s.params[rotation_params::kRounds]));
    expect_size(s, uint64_t{Rotation::kRounds} * padded);
    std::vector<uint8_t> negate(s.data, s.data + s.size);
    for (uint8_t b : negate) expect(s, b <= 1, "sign byte " + std::to_string(b));
    views->rotation = std::make_unique<Rotation>(dim, static_cast<int>(padded), std::move(negate));
  }

  void binary(const SectionView& s, CodeViews* views) const {
    expect(s, views->rotation != nullptr, "without a rotation section");
    const uint32_t padded = s.params[binary_params::kPadded];
    const uint32_t words = s.params[binary_params::kWords];
    expect(s, padded == static_cast<uint32_t>(views->rotation->padded()) && words == padded / 64, "size parameters");
    const size_t record = binary_record_bytes(static_cast<int>(words));
    expect(s, s.params[binary_params::kRecordBytes] == record, "record size");
    expect_size(s, sizeof(float) * padded + record * items());
    views->centroid = reinterpret_cast<const float*>(s.data);
    for (uint32_t j = 0; j < padded; ++j) expect(s, std::isfinite(views->centroid[j]), "centroid value");
    views->binary_records = s.data + sizeof(float) * padded;
    views->words = static_cast<int>(words);
    views->binary_record_size = record;
    for (int32_t i = 0; i < forest_.n_items(); ++i) {
      const BinaryRecord* r = views->binary(i);
      expect(s, is_factor(r->add) && std::isfinite(r->scale) && std::isfinite(r->error) && r->error >= 0,
             "factors of item " + std::to_string(i));
    }
  }

  void scalar(const SectionView& s, CodeViews* views) const {
    const int dim = forest_.layout().dim;
    expect(s, s.params[scalar_params::kDim] == static_cast<uint32_t>(dim), "dim " + std::to_string(s.params[scalar_params::kDim]));
    const size_t record = s.params[scalar_params::kRecordBytes];
    expect(s, readable_record_size(record, packed_scalar_record_bytes(dim)), "record size");
    const bool uniform = s.params[scalar_params::kUniformScale] != 0;
    expect(s, uniform == (forest_.layout().metric == MetricKind::Manhattan), "scale kind");
    const size_t table = pad64(sizeof(float) * dim);
    expect_size(s, 2 * table + record * items());
    views->scalar_offset = reinterpret_cast<const float*>(s.data);
    views->scalar_scale = reinterpret_cast<const float*>(s.data + table);
    for (int j = 0; j < dim; ++j) {
      expect(s, std::isfinite(views->scalar_offset[j]) && std::isfinite(views->scalar_scale[j]) && views->scalar_scale[j] > 0,
             "offset or scale of dimension " + std::to_string(j));
      expect(s, !uniform || views->scalar_scale[j] == views->scalar_scale[0], "scale of dimension " + std::to_string(j));
    }
    views->scalar_records = s.data + 2 * table;
    views->scalar_record_size = record;
  }

  void splits(const SectionView& s, CodeViews* views) const {
    const int dim = forest_.layout().dim;
    expect(s, s.params[split_params::kDim] == static_cast<uint32_t>(dim), "dim " + std::to_string(s.params[split_params::kDim]));
    const size_t record = s.params[split_params::kRecordBytes];
    expect(s, readable_record_size(record, packed_split_record_bytes(dim)), "record size");
    const uint32_t n_splits = s.params[split_params::kSplits];
    const uint32_t n_roots = s.params[split_params::kRoots];
    expect(s, n_splits <= static_cast<uint32_t>(forest_.n_nodes()) && n_roots == forest_.roots().size(), "split or root count");
    const size_t roots_bytes = pad64(sizeof(int32_t) * n_roots);
    expect_size(s, roots_bytes + record * n_splits);
    views->roots = reinterpret_cast<const int32_t*>(s.data);
    views->n_roots = static_cast<int32_t>(n_roots);
    views->split_records = s.data + roots_bytes;
    views->n_splits = static_cast<int32_t>(n_splits);
    views->split_record_size = record;
    check_split_graph(s, *views);
  }

 private:
  static bool is_factor(float f) { return std::isfinite(f) || f == std::numeric_limits<float>::infinity(); }
  size_t items() const { return static_cast<size_t>(forest_.n_items()); }

  void expect(const SectionView& s, bool ok, const std::string& what) const {
    if (!ok) throw bad_sidecar(sidecar_.path(), std::string("is corrupt: its ") + section_kind_name(s.kind) + " section has a bad " + what);
  }
  void expect_size(const SectionView& s, uint64_t bytes) const {
    if (s.size != bytes) {
      throw bad_sidecar(sidecar_.path(), std::string("is corrupt: its ") + section_kind_name(s.kind) + " section is " +
                                             std::to_string(s.size) + " bytes, its parameters say " + std::to_string(bytes));
    }
  }

  // Every reference in range, leaf references naming an item or a bucket of the forest, and no split
  // its own descendant (a walk over a cycle would not end).
  void check_split_graph(const SectionView& s, const CodeViews& views) const {
    const NodeLayout& layout = forest_.layout();
    auto check_reference = [&](int32_t r) {
      if (r >= 0) {
        expect(s, r < views.n_splits, "split reference " + std::to_string(r));
        return;
      }
      const int32_t node = leaf_node(r);
      expect(s, node >= 0 && node < forest_.n_nodes(), "leaf reference " + std::to_string(r));
      const int32_t n = *reinterpret_cast<const int32_t*>(forest_.data() + layout.node_size * static_cast<size_t>(node));
      expect(s, (n == 1 && node < forest_.n_items()) || (n >= 0 && n <= layout.max_bucket), "leaf reference to split node " + std::to_string(node));
    };
    for (int32_t i = 0; i < views.n_roots; ++i) check_reference(views.roots[i]);
    for (int32_t i = 0; i < views.n_splits; ++i) {
      const SplitRecord* r = views.split(i);
      check_reference(r->children[0]);
      check_reference(r->children[1]);
      expect(s, std::isfinite(r->offset) && std::isfinite(r->scale), "offset or scale of split " + std::to_string(i));
    }
    std::vector<int32_t> split_roots;
    for (int32_t i = 0; i < views.n_roots; ++i) {
      if (views.roots[i] >= 0) split_roots.push_back(views.roots[i]);
    }
    auto expand = [&](int32_t i, auto push) {
      for (int32_t c : views.split(i)->children) {
        if (c >= 0) push(c);
      }
    };
    walk_acyclic(static_cast<size_t>(views.n_splits), split_roots, expand,
                 [&](int32_t i) { expect(s, false, "cycle through split " + std::to_string(i)); });
  }

  const Forest& forest_;
  const Sidecar& sidecar_;
};

CodeViews check_code_sections(const Forest& forest, const Sidecar& sidecar) {
  const SectionChecker check(forest, sidecar);
  CodeViews views;
  const MetricKind metric = forest.layout().metric;
  enum class Use { Required, Optional, Refused };
  auto need = [&](SectionKind kind, Use use) -> const SectionView* {
    const SectionView* s = sidecar.find(kind);
    if (use == Use::Required && s == nullptr) throw bad_sidecar(sidecar.path(), std::string("has no ") + section_kind_name(static_cast<uint32_t>(kind)) + " section");
    if (use == Use::Refused && s != nullptr) {
      throw bad_sidecar(sidecar.path(), std::string("has a ") + section_kind_name(static_cast<uint32_t>(kind)) + " section a " +
                                            metric_name(metric) + " forest does not use");
    }
    return s;
  };
  const bool coded = metric != MetricKind::Hamming;
  const bool rotated = coded && metric != MetricKind::Manhattan;
  // 1-bit codes are left out where searches would not use them (write_codes), never half of them.
  const Use binary = rotated ? Use::Optional : Use::Refused;
  const SectionView* rotation = need(SectionKind::Rotation, binary);
  const SectionView* binary_codes = need(SectionKind::BinaryCodes, binary);
  if ((rotation == nullptr) != (binary_codes == nullptr)) {
    throw bad_sidecar(sidecar.path(), rotation != nullptr ? "has a rotation section without binary codes" : "has binary codes without a rotation section");
  }
  if (rotation != nullptr) {
    check.rotation(*rotation, &views);
    check.binary(*binary_codes, &views);
  }
  const Use required = coded ? Use::Required : Use::Refused;
  if (const SectionView* s = need(SectionKind::ScalarCodes, required)) check.scalar(*s, &views);
  if (const SectionView* s = need(SectionKind::Splits, required)) check.splits(*s, &views);
  return views;
}

template <class M>
class CodedForestImpl final : public CodedForest {
 public:
  CodedForestImpl(std::shared_ptr<const Forest> forest, std::shared_ptr<const Sidecar> sidecar, CodeViews views, BinaryStep step)
      : CodedForest(std::move(forest), std::move(sidecar)), views_(std::move(views)) {
    binary_step_ = views_.centroid != nullptr && (step == BinaryStep::Use || (step == BinaryStep::Calibrate && binary_step_pays()));
  }

  size_t search_vector(const float* query, size_t k, int64_t search_k, int64_t rerank, int32_t* ids,
                       float* distances) const override {
    if constexpr (M::kKind == MetricKind::Hamming) {
      return forest_->search_vector(query, k, search_k, ids, distances);
    } else {
      CodedSearch<M> search(*forest_, views_, binary_step_);
      const size_t found = search.run(query, k, search_k, rerank_for(k, rerank), ids, distances);
      check_intact(search.saw_bad_reference());
      return found;
    }
  }

  const CodeViews& views() const override { return views_; }
  bool uses_binary_step() const override { return binary_step_; }

  size_t search_item(int32_t item, size_t k, int64_t search_k, int64_t rerank, int32_t* ids, float* distances) const override {
    if constexpr (M::kKind == MetricKind::Hamming) {
      return forest_->search_item(item, k, search_k, ids, distances);
    } else {
      std::vector<float>& query = CodedScratch<M>::local().item_query;
      query.resize(static_cast<size_t>(forest_->layout().dim));
      forest_->get_item(item, query.data());  // checks the id
      return search_vector(query.data(), k, search_k, rerank, ids, distances);
    }
  }

 private:
  static size_t rerank_for(size_t k, int64_t rerank) {
    size_t n = rerank > 0 ? static_cast<size_t>(rerank) : std::max(kDefaultRerankPerK * k, kMinRerank);
    return std::max(n, k);
  }

  // Searches for items spread over the ids with the 1-bit step on, k 10 and a search_k of
  // kCalibrationSearchKPerTree per tree, and counts what its filter passes (see BinaryStep).
  bool binary_step_pays() const {
    constexpr size_t k = 10;
    if (forest_->n_items() == 0) return false;
    CodedSearch<M> search(*forest_, views_, true);
    std::vector<float> query(static_cast<size_t>(forest_->layout().dim));
    int32_t ids[k];
    float distances[k];
    const int64_t search_k = kCalibrationSearchKPerTree * static_cast<int64_t>(forest_->roots().size());
    size_t tested = 0, passed = 0;
    for (int i = 0; i < kCalibrationQueries; ++i) {
      const int32_t item = static_cast<int32_t>(int64_t{forest_->n_items()} * i / kCalibrationQueries);
      forest_->get_item(item, query.data());
      search.run(query.data(), k, search_k, rerank_for(k, 0), ids, distances);
      tested += search.filter_counts().tested;
      passed += search.filter_counts().passed;
    }
    return tested > 0 && static_cast<double>(passed) <= kMaxBinaryPassShare * static_cast<double>(tested);
  }

  CodeViews views_;
  bool binary_step_ = false;
};

}  // namespace

void CodedForest::check_intact(bool saw_bad_reference) const {
  forest_->check_intact(saw_bad_reference);
  if (sidecar_->damaged()) throw bad_sidecar(sidecar_->path(), "changed on disk while mapped (truncated?); reload the version");
}

std::shared_ptr<const CodedForest> CodedForest::load(std::shared_ptr<const Forest> forest, const std::string& path, bool prefault,
                                                     BinaryStep binary_step) {
  std::shared_ptr<const Sidecar> sidecar = Sidecar::load(path, ForestIdentity::of(*forest), prefault);
  CodeViews views = check_code_sections(*forest, *sidecar);
  if (sidecar->damaged()) throw bad_sidecar(path, "changed on disk while it was being read (truncated?)");
  const Sidecar& mapped_sidecar = *sidecar;
  const Forest& mapped_forest = *forest;
  auto coded = with_metric(forest->layout().metric, [&](auto tag) -> std::shared_ptr<const CodedForest> {
    using M = typename decltype(tag)::type;
    return std::make_shared<CodedForestImpl<M>>(std::move(forest), std::move(sidecar), std::move(views), binary_step);
  });
  // After the calibration's searches too: loading leaves the page cache to the queries.
  mapped_sidecar.release_pages();
  mapped_forest.storage().mapping.release_pages();  // the split checks read the forest's leaf nodes
  return coded;
}

}  // namespace canopy
