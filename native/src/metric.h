// Metric policies: node layout, distances, split planes and search priorities of each Annoy metric.
//
// Every struct mirrors one Annoy metric byte for byte (layouts in docs/annoy-format.md)
// and reproduces its arithmetic, including where Annoy's -ffast-math build fuses a*b+c (simd::madd),
// so a forest built or searched here matches Annoy's. Nodes are views over raw bytes: a fixed header
// followed by the value array; item, bucket and split nodes share the layout (see forest.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "error.h"
#include "kiss_random.h"
#include "simd.h"

namespace canopy {

enum class MetricKind { Angular, Euclidean, Manhattan, Dot, Hamming };

inline const char* metric_name(MetricKind kind) {
  switch (kind) {
    case MetricKind::Angular: return "angular";
    case MetricKind::Euclidean: return "euclidean";
    case MetricKind::Manhattan: return "manhattan";
    case MetricKind::Dot: return "dot";
    case MetricKind::Hamming: return "hamming";
  }
  return "unknown";
}

inline MetricKind parse_metric(const std::string& name) {
  for (MetricKind k : {MetricKind::Angular, MetricKind::Euclidean, MetricKind::Manhattan,
                       MetricKind::Dot, MetricKind::Hamming}) {
    if (name == metric_name(k)) return k;
  }
  throw Error(ErrorCode::InvalidArgument,
              "unknown metric '" + name + "' (expected angular, euclidean, manhattan, dot or hamming)");
}

namespace metric_detail {

template <class Node, class Value>
inline Value* values(Node* n) {
  return reinterpret_cast<Value*>(reinterpret_cast<uint8_t*>(n) + sizeof(Node));
}
template <class Node, class Value>
inline const Value* values(const Node* n) {
  return reinterpret_cast<const Value*>(reinterpret_cast<const uint8_t*>(n) + sizeof(Node));
}

// Annoy's Base::normalize (|v| without any extra dimension). Its build scales by rsqrt(|v|^2) (see
// simd::fast_rsqrt).
inline void plain_normalize(float* v, int f) {
  const float sq = simd::dot(v, v, f);
  if (std::sqrt(sq) > 0) {
    const float inv = simd::fast_rsqrt(sq);
    for (int z = 0; z < f; ++z) v[z] *= inv;
  }
}

// 2 - 2cos from squared norms and the inner product, evaluated in double as Annoy does.
inline float two_minus_two_cos(float pp, float qq, float pq) {
  const float ppqq = pp * qq;
  if (ppqq > 0) return static_cast<float>(2.0 - 2.0 * static_cast<double>(pq) / std::sqrt(ppqq));
  return 2.0f;
}

// Annoy's _split_imbalance: max(l, r) / (l + r), in the same mixed float/double precision.
inline double split_imbalance(size_t left, size_t right) {
  const double ls = static_cast<float>(left);
  const double rs = static_cast<float>(right);
  const float f = static_cast<float>(ls / (ls + rs + 1e-9));
  return f > 1 - f ? f : 1 - f;
}

}  // namespace metric_detail

// Plain float metrics share Annoy's two_means; only the hooks differ.
template <class M>
void two_means(const std::vector<const typename M::Node*>& nodes, int f, Kiss64Random& random,
               bool cosine, typename M::Node* p, typename M::Node* q) {
  constexpr int kIterationSteps = 200;
  const size_t count = nodes.size();
  const size_t i = random.index(count);
  size_t j = random.index(count - 1);
  j += (j >= i);
  M::copy_values(p, nodes[i], f);
  M::copy_values(q, nodes[j], f);
  if (cosine) {
    M::normalize_centroid(p, f);
    M::normalize_centroid(q, f);
  }
  M::init_node(p, f);
  M::init_node(q, f);
  int ic = 1, jc = 1;
  for (int l = 0; l < kIterationSteps; ++l) {
    const size_t k = random.index(count);
    const float di = static_cast<float>(ic) * M::distance(p, nodes[k], f);
    const float dj = static_cast<float>(jc) * M::distance(q, nodes[k], f);
    // |x|^2, summed once as the reference build sums it, serves both the check and the update.
    const float norm_sq = cosine ? M::update_norm_sq(nodes[k], f) : 1.0f;
    if (!(std::sqrt(norm_sq) > 0.0f)) continue;
    if (di < dj) {
      M::update_mean(p, nodes[k], norm_sq, ic, f);
      M::init_node(p, f);
      ++ic;
    } else if (dj < di) {
      M::update_mean(q, nodes[k], norm_sq, jc, f);
      M::init_node(q, f);
      ++jc;
    }
  }
}

// Common parts of the float metrics: values are float, priorities are float, search pushes
// min(d, ±margin) and starts every root at +inf.
struct FloatMetricBase {
  using Value = float;
  using Distance = float;
  // Metrics whose distance is a sum of non-negative terms set this and offer distance_bounded().
  static constexpr bool kHasBoundedDistance = false;
  // Split margins are an inner product plus a per-split term (margin_from_dot), so the builder can
  // compute many items' margins in one pass (simd::dot_many).
  static constexpr bool kBatchMargins = true;

  static int value_count(int dim) { return dim; }
  static float pq_initial() { return std::numeric_limits<float>::infinity(); }
  static float pq_distance(float d, float margin, int child) {
    if (child == 0) margin = -margin;
    return d < margin ? d : margin;
  }
  static void pack(const float* input, float* out, int dim) { std::memcpy(out, input, sizeof(float) * dim); }
  static void unpack(const float* v, float* out, int dim) { std::memcpy(out, v, sizeof(float) * dim); }
  // Annoy's centroid update, mean = (mean * c + x / |x|) / (c + 1), as its build computes it: x / |x|
  // becomes x * rsqrt(|x|^2) and the division by c + 1 a multiplication by its reciprocal.
  static void update_cosine_mean(float* mean, const float* x, float norm_sq, int c, int f) {
    simd::mean_update(mean, x, static_cast<float>(c), simd::fast_rsqrt(norm_sq), 1.0f / static_cast<float>(c + 1), f);
  }
  // |x|^2 for that update (in the reference build its tail is summed the short way).
  static float cosine_update_norm_sq(const float* x, int f) { return simd::dot_short_tail(x, x, f); }
  // The same for Minkowski metrics, where Annoy divides by a norm of 1.
  static void update_plain_mean(float* mean, const float* x, int c, int f) {
    simd::mean_update(mean, x, static_cast<float>(c), 1.0f, 1.0f / static_cast<float>(c + 1), f);
  }
};

struct Angular : FloatMetricBase {
  static constexpr MetricKind kKind = MetricKind::Angular;
  struct Node {
    int32_t n_descendants;
    union {
      int32_t children[2];
      float norm;  // items: cached |v|^2 (0 in old files: recomputed)
    };
  };
  static constexpr size_t kChildrenOffset = 4;

  static float* v(Node* n) { return metric_detail::values<Node, float>(n); }
  static const float* v(const Node* n) { return metric_detail::values<Node, float>(n); }

  static void init_node(Node* n, int f) { n->norm = simd::dot(v(n), v(n), f); }
  static float distance(const Node* x, const Node* y, int f) {
    const float pp = x->norm != 0 ? x->norm : simd::dot(v(x), v(x), f);
    const float qq = y->norm != 0 ? y->norm : simd::dot(v(y), v(y), f);
    return metric_detail::two_minus_two_cos(pp, qq, simd::dot(v(x), v(y), f));
  }
  static float normalized_distance(float d) { return std::sqrt(d > 0 ? d : 0.0f); }
  static float margin(const Node* split, const float* query, int f) { return simd::dot(v(split), query, f); }
  static float margin_from_dot(const Node*, float dot) { return dot; }

  // build hooks
  static void copy_values(Node* dst, const Node* src, int f) { std::memcpy(v(dst), v(src), sizeof(float) * f); }
  static float update_norm_sq(const Node* n, int f) { return cosine_update_norm_sq(v(n), f); }
  static void normalize_centroid(Node* n, int f) { metric_detail::plain_normalize(v(n), f); }
  static void update_mean(Node* mean, const Node* x, float norm_sq, int c, int f) {
    update_cosine_mean(v(mean), v(x), norm_sq, c, f);
  }
  static void create_split(const std::vector<const Node*>& nodes, int f, Node* p, Node* q, Kiss64Random& r, Node* out) {
    two_means<Angular>(nodes, f, r, true, p, q);
    for (int z = 0; z < f; ++z) v(out)[z] = v(p)[z] - v(q)[z];
    metric_detail::plain_normalize(v(out), f);
  }
  static bool side(const Node* split, const Node* item, int f, Kiss64Random& r) {
    const float m = margin(split, v(item), f);
    return m != 0 ? m > 0 : r.flip() != 0;
  }
  static bool split_is_valid(const Node*, int) { return true; }
};

// Inner product through Bachrach et al.'s extra dimension (dot_factor), as released Annoy 1.17.3
// (the version on PyPI) does it. Later Annoy sources add norm/built fields to this node and change the
// margin; those files have another node size and are not what pip's annoy reads or writes.
// 1.17.3's quirks are kept on purpose, because they decide which nodes a search visits: the margin
// adds the split's dot_factor squared (the query's extra coordinate is taken as 0 elsewhere), two_means
// measures with -x·y and never updates a centroid's dot_factor.
struct Dot : FloatMetricBase {
  static constexpr MetricKind kKind = MetricKind::Dot;
  struct Node {
    int32_t n_descendants;
    int32_t children[2];
    float dot_factor;  // items: sqrt(max|x|^2 - |x|^2) once built; splits: the normal's extra part
  };
  static constexpr size_t kChildrenOffset = 4;

  static float* v(Node* n) { return metric_detail::values<Node, float>(n); }
  static const float* v(const Node* n) { return metric_detail::values<Node, float>(n); }

  static void init_node(Node*, int) {}
  static float distance(const Node* x, const Node* y, int f) { return -simd::dot(v(x), v(y), f); }
  static float normalized_distance(float d) { return -d; }
  static float margin(const Node* split, const float* query, int f) {
    return margin_from_dot(split, simd::dot(v(split), query, f));
  }
  static float margin_from_dot(const Node* split, float dot) { return simd::madd(split->dot_factor, split->dot_factor, dot); }

  static void copy_values(Node* dst, const Node* src, int f) {
    std::memcpy(v(dst), v(src), sizeof(float) * f);
    dst->dot_factor = src->dot_factor;
  }
  static float update_norm_sq(const Node* n, int f) { return cosine_update_norm_sq(v(n), f); }
  // Annoy 1.17.3 writes pow(dot_factor, 2): a double, so this norm is summed and rooted in double.
  // The reference build scales v by the norm's reciprocal and divides dot_factor by the norm.
  static float extended_norm(const Node* n, int f) {
    const double df = n->dot_factor;
    return static_cast<float>(std::sqrt(static_cast<double>(simd::dot(v(n), v(n), f)) + df * df));
  }
  static void normalize_centroid(Node* n, int f) {
    const float norm = extended_norm(n, f);
    if (norm > 0) {
      const float inv = 1.0f / norm;
      for (int z = 0; z < f; ++z) v(n)[z] *= inv;
      n->dot_factor /= norm;
    }
  }
  static void normalize_normal(Node* n, int f) { normalize_centroid(n, f); }
  static void update_mean(Node* mean, const Node* x, float norm_sq, int c, int f) {
    update_cosine_mean(v(mean), v(x), norm_sq, c, f);
  }
  static void create_split(const std::vector<const Node*>& nodes, int f, Node* p, Node* q, Kiss64Random& r, Node* out) {
    p->dot_factor = 0;
    q->dot_factor = 0;
    two_means<Dot>(nodes, f, r, true, p, q);
    for (int z = 0; z < f; ++z) v(out)[z] = v(p)[z] - v(q)[z];
    out->dot_factor = p->dot_factor - q->dot_factor;
    normalize_normal(out, f);
  }
  // While splitting, the reference build hoists dot_factor^2 out of the loop over items, so the
  // margin's last addition is not fused there (it is at query time).
  static bool side(const Node* split, const Node* item, int f, Kiss64Random& r) {
    const float m = margin(split, v(item), f);
    return m != 0 ? m > 0 : r.flip() != 0;
  }
  static bool split_is_valid(const Node*, int) { return true; }

  // Before the trees: give every item (holes too, as Annoy) the extra dimension sqrt(max|x|^2 - |x|^2),
  // rounded as the reference build rounds it: it computes the roots of whole groups of 4 items with
  // the rsqrtps estimate (simd::approx_sqrt) once there are 43 items or more, the rest exactly.
  static void preprocess(Node* (*node_at)(void*, int32_t), void* ctx, int32_t n_items, int f) {
    float max_norm = 0;
    for (int32_t i = 0; i < n_items; ++i) {
      Node* n = node_at(ctx, i);
      const float d = simd::dot_short_tail(v(n), v(n), f);
      n->dot_factor = d < 0 ? 0 : std::sqrt(d);
      if (n->dot_factor > max_norm) max_norm = n->dot_factor;
    }
    const float max_sq = max_norm * max_norm;
    const int32_t grouped = n_items >= 43 ? n_items - n_items % 4 : 0;
    for (int32_t i = 0; i < n_items; ++i) {
      Node* n = node_at(ctx, i);
      const float diff = simd::madd(-n->dot_factor, n->dot_factor, max_sq);
      if (diff < 0) {
        n->dot_factor = 0;
      } else {
        n->dot_factor = i < grouped ? simd::approx_sqrt(diff) : std::sqrt(diff);
      }
    }
  }
};

// Minkowski metrics: a split is a plane n·x + a = 0.
template <class Self>
struct MinkowskiBase : FloatMetricBase {
  struct Node {
    int32_t n_descendants;
    float a;
    int32_t children[2];
  };
  static constexpr size_t kChildrenOffset = 8;

  static float* v(Node* n) { return metric_detail::values<Node, float>(n); }
  static const float* v(const Node* n) { return metric_detail::values<Node, float>(n); }

  static void init_node(Node*, int) {}
  static float margin(const Node* split, const float* query, int f) { return split->a + simd::dot(v(split), query, f); }
  static float margin_from_dot(const Node* split, float dot) { return split->a + dot; }

  static void copy_values(Node* dst, const Node* src, int f) { std::memcpy(v(dst), v(src), sizeof(float) * f); }
  static float update_norm_sq(const Node*, int) { return 1.0f; }  // unused: Minkowski means are not normalised
  static void normalize_centroid(Node* n, int f) { metric_detail::plain_normalize(v(n), f); }
  static void update_mean(Node* mean, const Node* x, float, int c, int f) {
    update_plain_mean(v(mean), v(x), c, f);
  }
  static void create_split(const std::vector<const Node*>& nodes, int f, Node* p, Node* q, Kiss64Random& r, Node* out) {
    two_means<Self>(nodes, f, r, false, p, q);
    for (int z = 0; z < f; ++z) v(out)[z] = v(p)[z] - v(q)[z];
    metric_detail::plain_normalize(v(out), f);
    float a = 0;
    for (int z = 0; z < f; ++z) {
      const float t = -v(out)[z] * (v(p)[z] + v(q)[z]);
      a += t * 0.5f;
    }
    out->a = a;
  }
  static bool side(const Node* split, const Node* item, int f, Kiss64Random& r) {
    const float m = margin(split, v(item), f);
    return m != 0 ? m > 0 : r.flip() != 0;
  }
  static bool split_is_valid(const Node*, int) { return true; }
};

struct Euclidean : MinkowskiBase<Euclidean> {
  static constexpr MetricKind kKind = MetricKind::Euclidean;
  static constexpr bool kHasBoundedDistance = true;
  static float distance(const Node* x, const Node* y, int f) { return simd::squared_l2(v(x), v(y), f); }
  static float distance_bounded(const Node* x, const Node* y, int f, float bound) {
    return simd::squared_l2_bounded(v(x), v(y), f, bound);
  }
  static float normalized_distance(float d) { return std::sqrt(d > 0 ? d : 0.0f); }
};

struct Manhattan : MinkowskiBase<Manhattan> {
  static constexpr MetricKind kKind = MetricKind::Manhattan;
  static constexpr bool kHasBoundedDistance = true;
  static float distance(const Node* x, const Node* y, int f) { return simd::l1(v(x), v(y), f); }
  static float distance_bounded(const Node* x, const Node* y, int f, float bound) {
    return simd::l1_bounded(v(x), v(y), f, bound);
  }
  static float normalized_distance(float d) { return d > 0 ? d : 0.0f; }
};

// Bit vectors packed into 64-bit words; a split tests one bit.
struct Hamming {
  static constexpr MetricKind kKind = MetricKind::Hamming;
  static constexpr bool kHasBoundedDistance = false;
  static constexpr bool kBatchMargins = false;
  using Value = uint64_t;
  using Distance = uint64_t;
  struct Node {
    int32_t n_descendants;
    int32_t children[2];
    uint32_t pad;
  };
  static constexpr size_t kChildrenOffset = 4;
  static constexpr size_t kMaxSplitAttempts = 20;

  static uint64_t* v(Node* n) { return metric_detail::values<Node, uint64_t>(n); }
  static const uint64_t* v(const Node* n) { return metric_detail::values<Node, uint64_t>(n); }

  static int value_count(int dim) { return (dim + 63) / 64; }
  // Input dimension 64w+j goes to bit j of word w (LSB first), set when the value is > 0.5.
  static void pack(const float* input, uint64_t* out, int dim) {
    for (int w = 0; w < value_count(dim); ++w) {
      uint64_t word = 0;
      for (int j = 0; j < 64 && w * 64 + j < dim; ++j) word |= static_cast<uint64_t>(input[w * 64 + j] > 0.5f) << j;
      out[w] = word;
    }
  }
  static void unpack(const uint64_t* v, float* out, int dim) {
    for (int i = 0; i < dim; ++i) out[i] = static_cast<float>((v[i / 64] >> (i % 64)) & 1);
  }

  static void init_node(Node*, int) {}
  static uint64_t distance(const Node* x, const Node* y, int words) { return simd::hamming(v(x), v(y), words); }
  static float normalized_distance(uint64_t d) { return static_cast<float>(d); }
  static uint64_t pq_initial() { return std::numeric_limits<uint64_t>::max(); }
  static uint64_t pq_distance(uint64_t d, bool margin, int child) { return d - (margin != (child != 0)); }
  // Annoy tests bit position p MSB-first within its word: word p/64, mask 1 << (63 - p%64).
  static bool bit_at(const uint64_t* words, uint64_t position) {
    return (words[position / 64] & (uint64_t{1} << (63 - position % 64))) != 0;
  }
  static bool margin(const Node* split, const uint64_t* query, int) { return bit_at(query, v(split)[0]); }

  static void create_split(const std::vector<const Node*>& nodes, int words, Node*, Node*, Kiss64Random& r, Node* out) {
    const uint64_t bits = static_cast<uint64_t>(words) * 64;
    auto splits = [&](uint64_t position) {
      size_t ones = 0;
      for (const Node* n : nodes) ones += bit_at(v(n), position);
      return ones > 0 && ones < nodes.size();
    };
    for (size_t attempt = 0; attempt < kMaxSplitAttempts; ++attempt) {
      v(out)[0] = r.index(bits);
      if (splits(v(out)[0])) return;
    }
    for (uint64_t position = 0; position < bits; ++position) {
      v(out)[0] = position;
      if (splits(position)) return;
    }
  }
  static bool side(const Node* split, const Node* item, int words, Kiss64Random&) { return margin(split, v(item), words); }
  // A split's bit position must fall inside the vector, or the query would read past it.
  static bool split_is_valid(const Node* split, int words) { return v(split)[0] < static_cast<uint64_t>(words) * 64; }
};

}  // namespace canopy
