// Kernels for making and scoring compact codes, chosen once at start-up from the CPU's features
// (AVX-512 VNNI, AVX2, scalar), as simd.h chooses the float kernels. All levels return identical
// results (integer sums; the float ones are within rounding), and the kernels that make codes are
// bit-identical at every level, so a sidecar's bytes do not depend on the CPU that wrote it.
#pragma once

#include <cstdint>

namespace canopy::code_kernels {

enum class Level { Scalar, Avx2, Avx512Vnni };

struct MaskedSum {
  uint32_t weighted;
  uint32_t ones;
};

// Sums over d = r - c of a 1-bit code, in double, each over 4 interleaved partial sums (j mod 4)
// added as (s0 + s1) + (s2 + s3).
struct SignSums {
  double squares;  // sum d[j]^2
  double lengths;  // sum |d[j]|
};

struct Kernels {
  Level level;
  // sum x[i] * y[i], x unsigned, y signed; n <= 65536 keeps it inside int32.
  int32_t (*dot_u8_s8)(const uint8_t* x, const int8_t* y, int n);
  // sum |x[i] - y[i]|.
  uint32_t (*sad_u8)(const uint8_t* x, const uint8_t* y, int n);
  // sum x[i] * q[i] in float, x signed bytes: a compact split's margin.
  float (*dot_s8_f32)(const int8_t* x, const float* q, int n);
  // sum (scale[i] * x[i] - p[i])^2 in float, x unsigned bytes: an 8-bit code's squared distance.
  float (*l2_u8_f32)(const uint8_t* x, const float* scale, const float* p, int n);
  // Over the set bits j of `bits`: the sum of Q[j], where Q[j] (0..15) is spread over 4 bit planes
  // (plane p, `words` 64-bit words from planes + p * words, holds bit p of every Q[j]), and their count.
  MaskedSum (*masked_sum4)(const uint64_t* bits, const uint64_t* planes, int words);

  // One round of a rotation, in place, n a power of two >= 8: v[i] *= factors[i], then the fast
  // Walsh-Hadamard transform, unnormalised: pairs (a, b) become (a + b, a - b) at strides 1, 2, 4, ...
  void (*rotation_round)(float* v, const float* factors, int n);
  // Bit j of bits (n / 64 words, n a multiple of 64) = r[j] - c[j] > 0, and the sums of that difference.
  SignSums (*sign_code)(const float* r, const float* c, int n, uint64_t* bits);
  // codes[j] = nearbyint((x[j] - offset[j]) / scale[j]) clamped to 0..255 (NaN to 0).
  void (*quantize_u8)(const float* x, const float* offset, const float* scale, int n, uint8_t* codes);
  // codes[j] = nearbyint(x[j] / scale) clamped to -127..127 (NaN to -127).
  void (*quantize_s8)(const float* x, float scale, int n, int8_t* codes);
};

extern const Kernels kKernels;
Kernels kernels_for(Level level);
const char* level_name(Level level);

inline int32_t dot_u8_s8(const uint8_t* x, const int8_t* y, int n) { return kKernels.dot_u8_s8(x, y, n); }
inline uint32_t sad_u8(const uint8_t* x, const uint8_t* y, int n) { return kKernels.sad_u8(x, y, n); }
inline float dot_s8_f32(const int8_t* x, const float* q, int n) { return kKernels.dot_s8_f32(x, q, n); }
inline float l2_u8_f32(const uint8_t* x, const float* scale, const float* p, int n) {
  return kKernels.l2_u8_f32(x, scale, p, n);
}
inline void rotation_round(float* v, const float* factors, int n) { kKernels.rotation_round(v, factors, n); }
inline SignSums sign_code(const float* r, const float* c, int n, uint64_t* bits) { return kKernels.sign_code(r, c, n, bits); }
inline void quantize_u8(const float* x, const float* offset, const float* scale, int n, uint8_t* codes) {
  kKernels.quantize_u8(x, offset, scale, n, codes);
}
inline void quantize_s8(const float* x, float scale, int n, int8_t* codes) { kKernels.quantize_s8(x, scale, n, codes); }
inline MaskedSum masked_sum4(const uint64_t* bits, const uint64_t* planes, int words) {
  return kKernels.masked_sum4(bits, planes, words);
}

}  // namespace canopy::code_kernels
