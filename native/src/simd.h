// Distance kernels, chosen once at start-up from the CPU's features (AVX-512F, AVX2+FMA, scalar).
//
// Every variant reproduces the arithmetic of Annoy built with -march=native on a CPU of that class
// (same lane width, same accumulation and reduction order, same fused multiply-adds in the tails), so
// distances and split margins are bit-identical to Annoy's and search results agree exactly.
#pragma once

#include <cstdint>

namespace canopy::simd {

enum class Level { Scalar, Avx2, Avx512 };

struct Kernels {
  Level level;
  bool has_fma;  // Annoy's scalar a*b+c became one fused op when the CPU has FMA
  float (*dot)(const float* x, const float* y, int n);
  float (*squared_l2)(const float* x, const float* y, int n);
  float (*l1)(const float* x, const float* y, int n);
  uint64_t (*hamming)(const uint64_t* x, const uint64_t* y, int words);
};

// Selected during static initialisation; nothing reads it before main().
extern const Kernels kKernels;

const char* level_name(Level level);

// a*b + c rounded as Annoy's scalar code rounds it on this CPU.
inline float madd(float a, float b, float c) {
  return kKernels.has_fma ? __builtin_fmaf(a, b, c) : a * b + c;
}

inline float dot(const float* x, const float* y, int n) { return kKernels.dot(x, y, n); }
inline float squared_l2(const float* x, const float* y, int n) { return kKernels.squared_l2(x, y, n); }
inline float l1(const float* x, const float* y, int n) { return kKernels.l1(x, y, n); }
inline uint64_t hamming(const uint64_t* x, const uint64_t* y, int words) {
  return kKernels.hamming(x, y, words);
}

// Kernels of one level, for tests that compare levels against each other.
Kernels kernels_for(Level level);

}  // namespace canopy::simd
