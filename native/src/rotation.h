// A seeded random rotation: the vector is zero-padded to a power of two D, then, `rounds` times,
// multiplied by random signs and put through a fast Walsh-Hadamard transform scaled by 1/sqrt(D).
// Each round is orthonormal, so lengths and inner products are kept, while every coordinate becomes a
// mix of all the input's: after it, one sign bit per coordinate (binary codes) describes a vector
// about equally well whatever the data's axes were. O(D log D) per vector.
#pragma once

#include <cstdint>
#include <vector>

namespace canopy {

class Rotation {
 public:
  static constexpr int kRounds = 3;

  // The padded size for `dim`: the next power of two, at least 64 (one code word).
  static int padded_dim(int dim);
  // Signs drawn from a Kiss64Random seeded with `seed`.
  static Rotation random(int dim, uint64_t seed);
  // Signs as stored: rounds * padded entries, 1 = negate. Checked by the caller.
  Rotation(int dim, int padded, std::vector<uint8_t> negate);

  int dim() const { return dim_; }
  int padded() const { return padded_; }
  const std::vector<uint8_t>& negate() const { return negate_; }

  // out[padded] = R pad(in[dim]). Thread-safe.
  void apply(const float* in, float* out) const;

 private:
  int dim_;
  int padded_;
  std::vector<uint8_t> negate_;  // rounds x padded
  std::vector<float> factors_;   // rounds x padded: -+1 / sqrt(padded), the signs with the scale (x * -s rounds as -(x * s))
};

}  // namespace canopy
