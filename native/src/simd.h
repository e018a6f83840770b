// Distance kernels, chosen once at start-up from the CPU's features (AVX-512F, AVX2+FMA, scalar).
//
// Every variant reproduces the arithmetic of Annoy 1.17.3 as pip builds it (GCC 12, -O3 -ffast-math
// -fno-associative-math -march=native) on a CPU of that class: same lane width, accumulation and
// reduction order, and the same blocks of the scalar tail vectorised or fused. So distances, margins
// and split planes are bit-identical to Annoy's, searches agree exactly and seeded single-threaded
// builds write Annoy's bytes. AVX-512 was checked against pip's own build; AVX2 and scalar against
// Annoy's source compiled with -march=haswell and -march=x86-64.
#pragma once

#include <cstdint>

namespace canopy::simd {

enum class Level { Scalar, Avx2, Avx512 };

struct Kernels {
  Level level;
  bool has_fma;  // Annoy's scalar a*b+c became one fused op when the CPU has FMA
  float (*dot)(const float* x, const float* y, int n);
  // The same sum with the tail the reference build uses where it is inlined into a few build steps
  // (centroid update, dot preprocessing): on AVX-512 its tail has no 4-wide block.
  float (*dot_short_tail)(const float* x, const float* y, int n);
  float (*squared_l2)(const float* x, const float* y, int n);
  float (*l1)(const float* x, const float* y, int n);
  // The same sums, but free to stop early and return any value > bound once the partial sum (a lower
  // bound: every term is >= 0) exceeds it. When they do not stop, the result is bit-identical.
  float (*squared_l2_bounded)(const float* x, const float* y, int n, float bound);
  float (*l1_bounded)(const float* x, const float* y, int n, float bound);
  uint64_t (*hamming)(const uint64_t* x, const uint64_t* y, int words);
  // Build's centroid update, element by element: mean = (mean * c + x * scale) * inv_count, with the
  // first product fused where Annoy's build fuses it.
  void (*mean_update)(float* mean, const float* x, float c, float scale, float inv_count, int n);
  // out[i] = dot(q, xs[i]) for count vectors, each summed exactly as dot() sums it; several at once
  // hide the latency of one accumulator chain.
  void (*dot_many)(const float* q, const float* const* xs, int count, int n, float* out);
};

// Selected during static initialisation; nothing reads it before main().
extern const Kernels kKernels;

const char* level_name(Level level);

// a*b + c rounded as Annoy's scalar code rounds it on this CPU.
inline float madd(float a, float b, float c) {
  return kKernels.has_fma ? __builtin_fmaf(a, b, c) : a * b + c;
}

// 1/sqrt(x) as GCC -ffast-math computes x / sqrtf(y) on x86: the rsqrtss estimate refined by one
// Newton-Raphson step, -0.5 * e * (x * e * e - 3). Annoy's build normalises vectors this way.
float fast_rsqrt(float x);
// sqrt(x) as GCC -ffast-math vectorises it: x * rsqrtps(x) refined by one Newton-Raphson step.
float approx_sqrt(float x);

inline float dot(const float* x, const float* y, int n) { return kKernels.dot(x, y, n); }
inline float dot_short_tail(const float* x, const float* y, int n) { return kKernels.dot_short_tail(x, y, n); }
inline float squared_l2(const float* x, const float* y, int n) { return kKernels.squared_l2(x, y, n); }
inline float l1(const float* x, const float* y, int n) { return kKernels.l1(x, y, n); }
inline float squared_l2_bounded(const float* x, const float* y, int n, float bound) {
  return kKernels.squared_l2_bounded(x, y, n, bound);
}
inline float l1_bounded(const float* x, const float* y, int n, float bound) { return kKernels.l1_bounded(x, y, n, bound); }
inline void mean_update(float* mean, const float* x, float c, float scale, float inv_count, int n) {
  kKernels.mean_update(mean, x, c, scale, inv_count, n);
}
inline void dot_many(const float* q, const float* const* xs, int count, int n, float* out) {
  kKernels.dot_many(q, xs, count, n, out);
}
inline uint64_t hamming(const uint64_t* x, const uint64_t* y, int words) {
  return kKernels.hamming(x, y, words);
}

// Kernels of one level, for tests that compare levels against each other.
Kernels kernels_for(Level level);

}  // namespace canopy::simd
