#include "rotation.h"

#include <cmath>
#include <cstring>

#include "code_kernels.h"
#include "kiss_random.h"

namespace canopy {

int Rotation::padded_dim(int dim) {
  int d = 64;
  while (d < dim) d *= 2;
  return d;
}

Rotation Rotation::random(int dim, uint64_t seed) {
  const int padded = padded_dim(dim);
  Kiss64Random random(seed);
  std::vector<uint8_t> negate(static_cast<size_t>(kRounds) * padded);
  for (auto& s : negate) s = static_cast<uint8_t>(random.flip());
  return Rotation(dim, padded, std::move(negate));
}

Rotation::Rotation(int dim, int padded, std::vector<uint8_t> negate)
    : dim_(dim), padded_(padded), negate_(std::move(negate)), factors_(negate_.size()) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(padded));
  for (size_t i = 0; i < negate_.size(); ++i) factors_[i] = negate_[i] != 0 ? -scale : scale;
}

void Rotation::apply(const float* in, float* out) const {
  std::memcpy(out, in, sizeof(float) * dim_);
  std::memset(out + dim_, 0, sizeof(float) * (padded_ - dim_));
  for (int r = 0; r < kRounds; ++r) code_kernels::rotation_round(out, &factors_[static_cast<size_t>(r) * padded_], padded_);
}

}  // namespace canopy
