#include "rotation.h"

#include <cmath>
#include <cstring>

#include "kiss_random.h"

namespace canopy {
namespace {

// In place, unnormalised: pairs (a, b) become (a + b, a - b) at strides 1, 2, 4, ...
void walsh_hadamard(float* v, int n) {
  for (int h = 1; h < n; h *= 2) {
    for (int i = 0; i < n; i += 2 * h) {
      for (int j = i; j < i + h; ++j) {
        const float a = v[j];
        const float b = v[j + h];
        v[j] = a + b;
        v[j + h] = a - b;
      }
    }
  }
}

}  // namespace

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
    : dim_(dim), padded_(padded), negate_(std::move(negate)), scale_(1.0f / std::sqrt(static_cast<float>(padded))) {}

void Rotation::apply(const float* in, float* out) const {
  std::memcpy(out, in, sizeof(float) * dim_);
  std::memset(out + dim_, 0, sizeof(float) * (padded_ - dim_));
  for (int r = 0; r < kRounds; ++r) {
    const uint8_t* negate = &negate_[static_cast<size_t>(r) * padded_];
    for (int i = 0; i < padded_; ++i) out[i] = negate[i] != 0 ? -out[i] * scale_ : out[i] * scale_;
    walsh_hadamard(out, padded_);
  }
}

}  // namespace canopy
