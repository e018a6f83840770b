// Writes the code sections of a sidecar from a built forest (layouts in code_sections.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "code_kernels.h"
#include "code_sections.h"
#include "codes.h"

namespace canopy {
namespace {

constexpr float kHole = std::numeric_limits<float>::infinity();

int32_t descendants(const Forest& forest, int32_t node) {
  return *reinterpret_cast<const int32_t*>(forest.data() + forest.layout().node_size * static_cast<size_t>(node));
}

bool is_item(const Forest& forest, int32_t node) { return node < forest.n_items() && descendants(forest, node) == 1; }

template <class T>
void append(std::vector<uint8_t>& out, const T* values, size_t count) {
  const auto* p = reinterpret_cast<const uint8_t*>(values);
  out.insert(out.end(), p, p + sizeof(T) * count);
}

void pad_to(std::vector<uint8_t>& out, size_t size) { out.resize(size, 0); }

// Each item's vector as the codes see it: angular items scaled to unit length (its distance ignores
// length), the others read in place from the forest. Holes give nullptr. One pointer valid at a time.
class ItemReader {
 public:
  explicit ItemReader(const Forest& forest)
      : forest_(forest),
        dim_(forest.layout().dim),
        unit_length_(forest.layout().metric == MetricKind::Angular),
        values_offset_(with_metric(forest.layout().metric, [](auto tag) { return sizeof(typename decltype(tag)::type::Node); })),
        scaled_(unit_length_ ? static_cast<size_t>(dim_) : 0) {}

  const float* read(int32_t item) {
    if (!is_item(forest_, item)) return nullptr;
    const uint8_t* node = forest_.data() + forest_.layout().node_size * static_cast<size_t>(item);
    const float* v = reinterpret_cast<const float*>(node + values_offset_);
    if (!unit_length_) return v;
    std::copy(v, v + dim_, scaled_.begin());
    scale_to_unit_length(scaled_.data(), dim_);
    return scaled_.data();
  }

 private:
  const Forest& forest_;
  int dim_;
  bool unit_length_;
  size_t values_offset_;  // the values follow the node's header (metric.h)
  std::vector<float> scaled_;
};

SectionData rotation_section(const Rotation& rotation, uint64_t seed) {
  SectionData s{static_cast<uint32_t>(SectionKind::Rotation), kSectionRequired, {}, rotation.negate()};
  s.params[rotation_params::kPadded] = static_cast<uint32_t>(rotation.padded());
  s.params[rotation_params::kRounds] = Rotation::kRounds;
  s.params[rotation_params::kSeedLow] = static_cast<uint32_t>(seed);
  s.params[rotation_params::kSeedHigh] = static_cast<uint32_t>(seed >> 32);
  return s;
}

// What coding an item needs to know of all of them: their mean (where the 1-bit codes are centred)
// and each dimension's range (the 8-bit codes' scale). One pass; the coders take a second.
struct ItemStats {
  std::vector<float> mean;  // 0 with no items
  std::vector<float> low;   // low = high = 0 with no items
  std::vector<float> high;
};

ItemStats item_stats(const Forest& forest, ItemReader& items) {
  const size_t dim = static_cast<size_t>(forest.layout().dim);
  std::vector<double> sum(dim, 0.0);
  ItemStats stats{std::vector<float>(dim), std::vector<float>(dim, std::numeric_limits<float>::infinity()),
                  std::vector<float>(dim, -std::numeric_limits<float>::infinity())};
  size_t count = 0;
  for (int32_t i = 0; i < forest.n_items(); ++i) {
    const float* x = items.read(i);
    if (x == nullptr) continue;
    for (size_t j = 0; j < dim; ++j) {
      sum[j] += x[j];
      stats.low[j] = std::min(stats.low[j], x[j]);
      stats.high[j] = std::max(stats.high[j], x[j]);
    }
    ++count;
  }
  for (size_t j = 0; j < dim; ++j) {
    stats.mean[j] = count > 0 ? static_cast<float>(sum[j] / static_cast<double>(count)) : 0.0f;
    if (!(stats.low[j] <= stats.high[j])) stats.low[j] = stats.high[j] = 0;  // no items (or only NaN)
  }
  return stats;
}

// 1-bit codes after the rotation, centred on the items' mean: r = R x~ - R c, bit j = r[j] > 0. For a
// query vector v, <r, v> ~ (|r|^2 / sum_j |r_j|) * (2 * sum_{bit j set} v_j - sum_j v_j) (the RaBitQ
// estimate with the code's unit vector signs/sqrt(D); derivation in docs/sidecar-format.md), so each
// item keeps that ratio, times the metric's factor, as its scale.
class BinaryCoder {
 public:
  BinaryCoder(const Forest& forest, const Rotation& rotation, const ItemStats& stats)
      : rotation_(rotation),
        dot_(forest.layout().metric == MetricKind::Dot),
        centroid_(static_cast<size_t>(rotation.padded())),
        rotated_(centroid_.size()),
        bits_(centroid_.size() / 64) {
    rotation.apply(stats.mean.data(), centroid_.data());
    bytes_.reserve(sizeof(float) * centroid_.size() + record_size() * static_cast<size_t>(forest.n_items()));
    append(bytes_, centroid_.data(), centroid_.size());
  }

  // x: the item as ItemReader reads it, or nullptr for a hole.
  void add(const float* x) {
    BinaryRecord record{kHole, 0.0f, 0.0f, 0.0f};
    std::fill(bits_.begin(), bits_.end(), 0);
    if (x != nullptr) {
      const int padded = rotation_.padded();
      rotation_.apply(x, rotated_.data());
      const code_kernels::SignSums sums = code_kernels::sign_code(rotated_.data(), centroid_.data(), padded, bits_.data());
      const double norm_sq = sums.squares, l1 = sums.lengths;
      const double ratio = l1 > 0 ? norm_sq / l1 : 0.0;  // |r| / <u, r/|r|>, over sqrt(D)
      const double factor = dot_ ? 1.0 : 2.0;            // how <r, v> enters the distance
      record.add = dot_ ? 0.0f : static_cast<float>(norm_sq);
      record.scale = static_cast<float>(-factor * ratio);
      // RaBitQ's bound on the estimate of <r/|r|, v/|v|>: sqrt(1 - a^2) / a / sqrt(D - 1), a = <u, r/|r|>.
      const double a = l1 > 0 ? l1 / (std::sqrt(static_cast<double>(padded)) * std::sqrt(norm_sq)) : 1.0;
      const double spread = std::sqrt(std::max(0.0, 1.0 - a * a)) / a / std::sqrt(static_cast<double>(padded - 1));
      record.error = static_cast<float>(factor * std::sqrt(norm_sq) * spread);
    }
    append(bytes_, &record, 1);
    append(bytes_, bits_.data(), bits_.size());
  }

  SectionData finish() {
    SectionData s{static_cast<uint32_t>(SectionKind::BinaryCodes), kSectionRequired, {}, std::move(bytes_)};
    s.params[binary_params::kPadded] = static_cast<uint32_t>(rotation_.padded());
    s.params[binary_params::kWords] = static_cast<uint32_t>(bits_.size());
    s.params[binary_params::kRecordBytes] = static_cast<uint32_t>(record_size());
    return s;
  }

 private:
  size_t record_size() const { return binary_record_bytes(static_cast<int>(bits_.size())); }

  const Rotation& rotation_;
  bool dot_;
  std::vector<float> centroid_;  // R c
  std::vector<float> rotated_;   // scratch: R x
  std::vector<uint64_t> bits_;
  std::vector<uint8_t> bytes_;
};

// 8-bit codes, per dimension: value ~ offset + scale * code over the items' range. Manhattan uses one
// scale for every dimension, so its distance is one sum of absolute byte differences.
class ScalarCoder {
 public:
  ScalarCoder(const Forest& forest, const ItemStats& stats)
      : dim_(forest.layout().dim), uniform_(forest.layout().metric == MetricKind::Manhattan), offset_(stats.low),
        scale_(static_cast<size_t>(dim_)), code_(scalar_record_bytes(dim_), 0) {
    float widest = 0;
    for (int j = 0; j < dim_; ++j) widest = std::max(widest, stats.high[j] - stats.low[j]);
    for (int j = 0; j < dim_; ++j) {
      const float range = uniform_ ? widest : stats.high[j] - stats.low[j];
      scale_[j] = range > 0 ? range / 255.0f : 1.0f;
    }
    const size_t table = pad64(sizeof(float) * dim_);
    bytes_.reserve(2 * table + code_.size() * static_cast<size_t>(forest.n_items()));
    append(bytes_, offset_.data(), offset_.size());
    pad_to(bytes_, table);
    append(bytes_, scale_.data(), scale_.size());
    pad_to(bytes_, 2 * table);
  }

  // x: the item as ItemReader reads it, or nullptr for a hole (zeros: no walk or graph reaches it).
  void add(const float* x) {
    std::fill(code_.begin(), code_.end(), 0);
    if (x != nullptr) code_kernels::quantize_u8(x, offset_.data(), scale_.data(), dim_, code_.data());
    append(bytes_, code_.data(), code_.size());
  }

  SectionData finish() {
    SectionData s{static_cast<uint32_t>(SectionKind::ScalarCodes), kSectionRequired, {}, std::move(bytes_)};
    s.params[scalar_params::kDim] = static_cast<uint32_t>(dim_);
    s.params[scalar_params::kRecordBytes] = static_cast<uint32_t>(code_.size());
    s.params[scalar_params::kUniformScale] = uniform_ ? 1 : 0;
    return s;
  }

 private:
  int dim_;
  bool uniform_;
  std::vector<float> offset_;
  std::vector<float> scale_;
  std::vector<uint8_t> code_;  // one record
  std::vector<uint8_t> bytes_;
};

// The split's constant term: margin = offset + normal . q, as the metric computes it.
template <class M>
float split_offset(const typename M::Node* node) {
  if constexpr (M::kKind == MetricKind::Euclidean || M::kKind == MetricKind::Manhattan) return node->a;
  if constexpr (M::kKind == MetricKind::Dot) return node->dot_factor * node->dot_factor;
  return 0.0f;
}

// Compact copies of every split reachable from the roots, numbered depth-first from each root (a
// parent before its children, so a walk tends to move forward in memory).
template <class M>
SectionData split_section(const Forest& forest) {
  using Node = typename M::Node;
  const NodeLayout& layout = forest.layout();
  const int dim = layout.dim;
  auto node = [&](int32_t i) { return reinterpret_cast<const Node*>(forest.data() + layout.node_size * static_cast<size_t>(i)); };
  auto is_split = [&](int32_t i) { return !is_item(forest, i) && descendants(forest, i) > layout.max_bucket; };
  auto children = [&](int32_t i) {
    return reinterpret_cast<const int32_t*>(reinterpret_cast<const uint8_t*>(node(i)) + M::kChildrenOffset);
  };

  std::vector<int32_t> index_of(static_cast<size_t>(forest.n_nodes()), -1);
  std::vector<int32_t> order;  // split nodes in record order
  std::vector<int32_t> stack;
  for (int32_t root : forest.roots()) {
    if (is_split(root) && index_of[root] < 0) stack.push_back(root);
    while (!stack.empty()) {
      const int32_t i = stack.back();
      stack.pop_back();
      if (index_of[i] >= 0) continue;
      index_of[i] = static_cast<int32_t>(order.size());
      order.push_back(i);
      for (int side = 1; side >= 0; --side) {
        const int32_t c = children(i)[side];
        if (is_split(c) && index_of[c] < 0) stack.push_back(c);
      }
    }
  }
  auto reference = [&](int32_t i) { return is_split(i) ? index_of[i] : leaf_reference(i); };

  const size_t record_size = split_record_bytes(dim);
  const size_t n_roots = forest.roots().size();
  std::vector<uint8_t> bytes;
  bytes.reserve(pad64(sizeof(int32_t) * n_roots) + record_size * order.size());
  for (int32_t root : forest.roots()) {
    const int32_t r = reference(root);
    append(bytes, &r, 1);
  }
  pad_to(bytes, pad64(sizeof(int32_t) * n_roots));
  std::vector<int8_t> normal(record_size - sizeof(SplitRecord), 0);
  for (int32_t i : order) {
    const float* v = M::v(node(i));
    float largest = 0;
    for (int j = 0; j < dim; ++j) largest = std::max(largest, std::fabs(v[j]));
    const float scale = largest > 0 ? largest / 127.0f : 1.0f;
    code_kernels::quantize_s8(v, scale, dim, normal.data());
    const SplitRecord record{{reference(children(i)[0]), reference(children(i)[1])}, split_offset<M>(node(i)), scale};
    append(bytes, &record, 1);
    append(bytes, normal.data(), normal.size());
  }
  SectionData s{static_cast<uint32_t>(SectionKind::Splits), kSectionRequired, {}, std::move(bytes)};
  s.params[split_params::kDim] = static_cast<uint32_t>(dim);
  s.params[split_params::kRecordBytes] = static_cast<uint32_t>(record_size);
  s.params[split_params::kSplits] = static_cast<uint32_t>(order.size());
  s.params[split_params::kRoots] = static_cast<uint32_t>(n_roots);
  return s;
}

}  // namespace

std::vector<SectionData> build_code_sections(const Forest& forest, uint64_t seed) {
  const NodeLayout& layout = forest.layout();
  if (layout.metric == MetricKind::Hamming) return {};
  if (layout.dim > kMaxCodedDim) {
    throw Error(ErrorCode::InvalidArgument, "codes support dim up to " + std::to_string(kMaxCodedDim) + ", this forest has " +
                                                std::to_string(layout.dim));
  }
  ItemReader items(forest);
  const ItemStats stats = item_stats(forest, items);
  std::optional<Rotation> rotation;
  std::optional<BinaryCoder> binary;
  if (layout.metric != MetricKind::Manhattan) {
    rotation.emplace(Rotation::random(layout.dim, seed));
    binary.emplace(forest, *rotation, stats);
  }
  ScalarCoder scalar(forest, stats);
  for (int32_t i = 0; i < forest.n_items(); ++i) {  // each item read once, for both codes
    const float* item = items.read(i);
    if (binary) binary->add(item);
    scalar.add(item);
  }
  std::vector<SectionData> sections;
  if (binary) {
    sections.push_back(rotation_section(*rotation, seed));
    sections.push_back(binary->finish());
  }
  sections.push_back(scalar.finish());
  with_metric(layout.metric, [&](auto tag) {
    using M = typename decltype(tag)::type;
    if constexpr (M::kKind != MetricKind::Hamming) sections.push_back(split_section<M>(forest));
  });
  forest.check_intact();
  return sections;
}

std::shared_ptr<const CodedForest> write_codes(const std::shared_ptr<const Forest>& forest, const std::string& path, uint64_t seed,
                                               BinaryCodes binary) {
  std::vector<SectionData> sections = build_code_sections(*forest, seed);
  const ForestIdentity identity = ForestIdentity::of(*forest);
  write_sidecar(path, identity, sections);
  std::shared_ptr<const CodedForest> written = CodedForest::load(forest, path, false);
  auto one_bit = [](const SectionData& s) {
    return s.kind == static_cast<uint32_t>(SectionKind::Rotation) || s.kind == static_cast<uint32_t>(SectionKind::BinaryCodes);
  };
  // The calibration that load ran decides for the file, once: every later load would decide the same.
  if (binary == BinaryCodes::Always || written->uses_binary_step() || std::none_of(sections.begin(), sections.end(), one_bit)) {
    return written;
  }
  sections.erase(std::remove_if(sections.begin(), sections.end(), one_bit), sections.end());
  written.reset();  // unmaps the file about to be replaced
  write_sidecar(path, identity, sections);
  return CodedForest::load(forest, path, false);  // without 1-bit codes: nothing to calibrate
}

}  // namespace canopy
