// The query side of 8-bit scalar codes (code_sections.h: scalar_record_bytes): the query prepared once,
// then an estimate per item record, in the metric's internal units (squared euclidean; angular: the
// squared distance of unit vectors, 2 - 2 cos, as Annoy's internal angular distance; manhattan: the
// sum of absolute differences). Estimates of one query compare with each other and, closely, with
// exact internal distances.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "code_kernels.h"
#include "code_sections.h"
#include "metric.h"

namespace canopy {

template <class M>
class ScalarQuery {
 public:
  // `prepared` is the query as the codes see it (angular: unit length), dim floats, read only here.
  // `views` must outlive the estimates.
  void prepare(const CodeViews& views, const float* prepared, int dim) {
    views_ = &views;
    dim_ = dim;
    if constexpr (M::kKind == MetricKind::Manhattan) {
      step_ = views.scalar_scale[0];
      levels_.resize(static_cast<size_t>(dim));
      for (int j = 0; j < dim; ++j) {
        const float level = std::nearbyint((prepared[j] - views.scalar_offset[j]) / step_);
        levels_[j] = static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, level)));
      }
    } else if constexpr (M::kKind == MetricKind::Dot) {
      // x~ . q = offset . q + sum code_j * (scale_j q_j), the second sum on an 8-bit copy of scale * q.
      float largest = 0;
      offset_dot_ = 0;
      for (int j = 0; j < dim; ++j) {
        largest = std::max(largest, std::fabs(views.scalar_scale[j] * prepared[j]));
        offset_dot_ += views.scalar_offset[j] * prepared[j];
      }
      unit_ = largest > 0 ? largest / 127.0f : 1.0f;
      scaled_.resize(static_cast<size_t>(dim));
      for (int j = 0; j < dim; ++j) scaled_[j] = static_cast<int8_t>(std::nearbyint(views.scalar_scale[j] * prepared[j] / unit_));
    } else {
      // |x~ - q|^2 = sum (scale_j code_j - (q_j - offset_j))^2, in float: no per-item norm to store.
      from_offset_.resize(static_cast<size_t>(dim));
      for (int j = 0; j < dim; ++j) from_offset_[j] = prepared[j] - views.scalar_offset[j];
    }
  }

  // True where an estimate is a sum of non-negative terms, one per dimension, so the sum over some
  // dimensions is a lower bound of the whole (partial()).
  static constexpr bool kSumOfTerms = M::kKind != MetricKind::Dot;

  // The estimate's terms for dimensions [from, to) (kSumOfTerms metrics); partial(c, 0, j) +
  // partial(c, j, dim) is estimate(c) up to rounding.
  float partial(const uint8_t* codes, int from, int to) const {
    static_assert(kSumOfTerms, "dot estimates have no partial sums");
    if constexpr (M::kKind == MetricKind::Manhattan) {
      return step_ * static_cast<float>(code_kernels::sad_u8(codes + from, levels_.data() + from, to - from));
    } else {
      return code_kernels::l2_u8_f32(codes + from, views_->scalar_scale + from, from_offset_.data() + from, to - from);
    }
  }

  // +inf for a NaN.
  float estimate(const uint8_t* codes) const {
    float e;
    if constexpr (M::kKind == MetricKind::Manhattan) {
      e = step_ * static_cast<float>(code_kernels::sad_u8(codes, levels_.data(), dim_));
    } else if constexpr (M::kKind == MetricKind::Dot) {
      e = -(offset_dot_ + unit_ * static_cast<float>(code_kernels::dot_u8_s8(codes, scaled_.data(), dim_)));
    } else {
      e = code_kernels::l2_u8_f32(codes, views_->scalar_scale, from_offset_.data(), dim_);
    }
    return e == e ? e : std::numeric_limits<float>::infinity();
  }

  float estimate(int32_t item) const { return estimate(views_->scalar(item)); }

  void prefetch(int32_t item) const { prefetch_lines(views_->scalar(item), views_->scalar_record_size); }

 private:
  const CodeViews* views_ = nullptr;
  int dim_ = 0;
  float step_ = 0;        // manhattan
  std::vector<uint8_t> levels_;
  float offset_dot_ = 0;  // dot
  float unit_ = 1;
  std::vector<int8_t> scaled_;
  std::vector<float> from_offset_;  // angular, euclidean
};

}  // namespace canopy
