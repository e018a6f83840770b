#include "simd.h"

#include <cmath>
#include <cstdlib>

#if defined(__x86_64__) || defined(__i386__)
// GCC 12 headers trip -Wmaybe-uninitialized inside _mm512_reduce_add_ps.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#define CANOPY_X86 1
#endif

namespace canopy::simd {
namespace {

// ---- scalar (no FMA: two roundings per step, as Annoy compiled for a plain x86-64) ----

float dot_scalar(const float* x, const float* y, int n) {
  float r = 0;
  for (int i = 0; i < n; ++i) r += x[i] * y[i];
  return r;
}

float squared_l2_scalar(const float* x, const float* y, int n) {
  float r = 0;
  for (int i = 0; i < n; ++i) {
    const float d = x[i] - y[i];
    r += d * d;
  }
  return r;
}

float l1_scalar(const float* x, const float* y, int n) {
  float r = 0;
  for (int i = 0; i < n; ++i) r += std::fabs(x[i] - y[i]);
  return r;
}

float squared_l2_bounded_scalar(const float* x, const float* y, int n, float) { return squared_l2_scalar(x, y, n); }
float l1_bounded_scalar(const float* x, const float* y, int n, float) { return l1_scalar(x, y, n); }

void mean_update_scalar(float* mean, const float* x, float c, float scale, float inv_count, int n) {
  for (int i = 0; i < n; ++i) mean[i] = (mean[i] * c + x[i] * scale) * inv_count;
}

void dot_many_scalar(const float* q, const float* const* xs, int count, int n, float* out) {
  for (int i = 0; i < count; ++i) out[i] = dot_scalar(q, xs[i], n);
}

uint64_t hamming_scalar(const uint64_t* x, const uint64_t* y, int words) {
  uint64_t r = 0;
  for (int i = 0; i < words; ++i) r += static_cast<uint64_t>(__builtin_popcountll(x[i] ^ y[i]));
  return r;
}

#ifdef CANOPY_X86

__attribute__((target("popcnt"))) uint64_t hamming_popcnt(const uint64_t* x, const uint64_t* y,
                                                          int words) {
  uint64_t r = 0;
  for (int i = 0; i < words; ++i) r += static_cast<uint64_t>(__builtin_popcountll(x[i] ^ y[i]));
  return r;
}

// Adds the lanes of t to r one after another, lane 0 first: the order of Annoy's scalar loop, kept
// in registers.
__attribute__((target("avx2,fma"))) inline float add_lanes_in_order(float r, __m128 t) {
  r += _mm_cvtss_f32(t);
  r += _mm_cvtss_f32(_mm_shuffle_ps(t, t, 1));
  r += _mm_cvtss_f32(_mm_shuffle_ps(t, t, 2));
  r += _mm_cvtss_f32(_mm_shuffle_ps(t, t, 3));
  return r;
}
__attribute__((target("avx2,fma"))) inline float add_lanes_in_order(float r, __m256 t) {
  return add_lanes_in_order(add_lanes_in_order(r, _mm256_castps256_ps128(t)), _mm256_extractf128_ps(t, 1));
}

// ---- AVX2 + FMA: 8 lanes, one accumulator (GCC fuses Annoy's mul+add), Annoy's hsum ----

__attribute__((target("avx2,fma"))) inline float hsum256(__m256 v) {
  const __m128 x128 = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
  const __m128 x64 = _mm_add_ps(x128, _mm_movehl_ps(x128, x128));
  const __m128 x32 = _mm_add_ss(x64, _mm_shuffle_ps(x64, x64, 0x55));
  return _mm_cvtss_f32(x32);
}

__attribute__((target("avx2,fma"))) float dot_avx2(const float* x, const float* y, int n) {
  float r = 0;
  if (n > 7) {
    __m256 acc = _mm256_setzero_ps();
    for (; n > 7; n -= 8, x += 8, y += 8)
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(y), acc);
    r += hsum256(acc);
  }
  if (n >= 4) {  // GCC vectorises 4 of Annoy's tail: products rounded, summed in order
    r = add_lanes_in_order(r, _mm_mul_ps(_mm_loadu_ps(x), _mm_loadu_ps(y)));
    x += 4, y += 4, n -= 4;
  }
  for (; n > 0; --n) r = __builtin_fmaf(*x++, *y++, r);
  return r;
}

__attribute__((target("avx2,fma"))) float squared_l2_avx2(const float* x, const float* y, int n) {
  float r = 0;
  if (n > 7) {
    __m256 acc = _mm256_setzero_ps();
    for (; n > 7; n -= 8, x += 8, y += 8) {
      const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(y));
      acc = _mm256_fmadd_ps(d, d, acc);
    }
    r = hsum256(acc);
  }
  if (n >= 4) {
    const __m128 d = _mm_sub_ps(_mm_loadu_ps(x), _mm_loadu_ps(y));
    r = add_lanes_in_order(r, _mm_mul_ps(d, d));
    x += 4, y += 4, n -= 4;
  }
  for (; n > 0; --n) {
    const float d = *x++ - *y++;
    r = __builtin_fmaf(d, d, r);
  }
  return r;
}

__attribute__((target("avx2,fma"))) float l1_avx2(const float* x, const float* y, int n) {
  float r = 0;
  if (n > 7) {
    __m256 acc = _mm256_setzero_ps();
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (; n > 7; n -= 8, x += 8, y += 8) {
      const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(y));
      acc = _mm256_add_ps(acc, _mm256_andnot_ps(sign, d));
    }
    r = hsum256(acc);
  }
  for (; n > 0; --n) r += std::fabs(*x++ - *y++);
  return r;
}

__attribute__((target("avx2,fma"))) float squared_l2_bounded_avx2(const float* x, const float* y, int n, float) {
  return squared_l2_avx2(x, y, n);
}
__attribute__((target("avx2,fma"))) float l1_bounded_avx2(const float* x, const float* y, int n, float) {
  return l1_avx2(x, y, n);
}

__attribute__((target("avx2,fma"))) void mean_update_fma(float* mean, const float* x, float c, float scale,
                                                        float inv_count, int n) {
  for (int i = 0; i < n; ++i) mean[i] = __builtin_fmaf(mean[i], c, x[i] * scale) * inv_count;
}

// ---- AVX-512F: 16 lanes, one accumulator, _mm512_reduce_add_ps ----

// Annoy's scalar tail as the reference build (pip's annoy 1.17.3: GCC 12, -O3 -ffast-math
// -fno-associative-math -march=native on AVX-512) compiles it: a block of 8, then a block of 4, are
// vectorised (products rounded, then summed in order); the last < 4 use fused multiply-adds.
// Checked bit for bit against that build for dims 1..70.
__attribute__((target("avx512f,fma"))) inline float dot_tail_avx512(const float* x, const float* y, int n, float r) {
  if (n >= 8) {
    r = add_lanes_in_order(r, _mm256_mul_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(y)));
    x += 8, y += 8, n -= 8;
  }
  if (n >= 4) {
    r = add_lanes_in_order(r, _mm_mul_ps(_mm_loadu_ps(x), _mm_loadu_ps(y)));
    x += 4, y += 4, n -= 4;
  }
  for (; n > 0; --n) r = __builtin_fmaf(*x++, *y++, r);
  return r;
}

__attribute__((target("avx512f,fma"))) inline float squared_l2_tail_avx512(const float* x, const float* y, int n, float r) {
  if (n >= 8) {
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(y));
    r = add_lanes_in_order(r, _mm256_mul_ps(d, d));
    x += 8, y += 8, n -= 8;
  }
  if (n >= 4) {
    const __m128 d = _mm_sub_ps(_mm_loadu_ps(x), _mm_loadu_ps(y));
    r = add_lanes_in_order(r, _mm_mul_ps(d, d));
    x += 4, y += 4, n -= 4;
  }
  for (; n > 0; --n) {
    const float d = *x++ - *y++;
    r = __builtin_fmaf(d, d, r);
  }
  return r;
}

__attribute__((target("avx512f,fma"))) float dot_avx512(const float* x, const float* y, int n) {
  float r = 0;
  if (n > 15) {
    __m512 acc = _mm512_setzero_ps();
    for (; n > 15; n -= 16, x += 16, y += 16)
      acc = _mm512_fmadd_ps(_mm512_loadu_ps(x), _mm512_loadu_ps(y), acc);
    r += _mm512_reduce_add_ps(acc);
  }
  return dot_tail_avx512(x, y, n, r);
}

__attribute__((target("avx2,fma"))) void dot_many_avx2(const float* q, const float* const* xs, int count, int n, float* out) {
  for (int i = 0; i < count; ++i) out[i] = dot_avx2(q, xs[i], n);
}

// Four vectors per pass, one accumulator each: the same per-vector order as dot_avx512.
__attribute__((target("avx512f,fma"))) void dot_many_avx512(const float* q, const float* const* xs, int count, int n,
                                                            float* out) {
  int i = 0;
  const int blocks = n / 16;
  for (; i + 4 <= count; i += 4) {
    const float* a = xs[i];
    const float* b = xs[i + 1];
    const float* c = xs[i + 2];
    const float* d = xs[i + 3];
    float r[4] = {0, 0, 0, 0};
    if (n > 15) {
      __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
      for (int k = 0; k < blocks; ++k) {
        const __m512 qv = _mm512_loadu_ps(q + 16 * k);
        acc0 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(a + 16 * k), acc0);
        acc1 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(b + 16 * k), acc1);
        acc2 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(c + 16 * k), acc2);
        acc3 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(d + 16 * k), acc3);
      }
      r[0] += _mm512_reduce_add_ps(acc0);
      r[1] += _mm512_reduce_add_ps(acc1);
      r[2] += _mm512_reduce_add_ps(acc2);
      r[3] += _mm512_reduce_add_ps(acc3);
    }
    const int done = n > 15 ? 16 * blocks : 0;
    out[i] = dot_tail_avx512(q + done, a + done, n - done, r[0]);
    out[i + 1] = dot_tail_avx512(q + done, b + done, n - done, r[1]);
    out[i + 2] = dot_tail_avx512(q + done, c + done, n - done, r[2]);
    out[i + 3] = dot_tail_avx512(q + done, d + done, n - done, r[3]);
  }
  for (; i < count; ++i) out[i] = dot_avx512(q, xs[i], n);
}

__attribute__((target("avx512f,fma"))) float dot_short_tail_avx512(const float* x, const float* y, int n) {
  float r = 0;
  if (n > 15) {
    __m512 acc = _mm512_setzero_ps();
    for (; n > 15; n -= 16, x += 16, y += 16)
      acc = _mm512_fmadd_ps(_mm512_loadu_ps(x), _mm512_loadu_ps(y), acc);
    r += _mm512_reduce_add_ps(acc);
  }
  if (n >= 8) {
      r = add_lanes_in_order(r, _mm256_mul_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(y)));
    x += 8, y += 8, n -= 8;
  }
  for (; n > 0; --n) r = __builtin_fmaf(*x++, *y++, r);
  return r;
}

__attribute__((target("avx512f,fma"))) float squared_l2_avx512(const float* x, const float* y,
                                                               int n) {
  float r = 0;
  if (n > 15) {
    __m512 acc = _mm512_setzero_ps();
    for (; n > 15; n -= 16, x += 16, y += 16) {
      const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x), _mm512_loadu_ps(y));
      acc = _mm512_fmadd_ps(d, d, acc);
    }
    r = _mm512_reduce_add_ps(acc);
  }
  return squared_l2_tail_avx512(x, y, n, r);
}

// Every kCheckBlocks blocks the lanes' sum is a lower bound of the final value (all terms >= 0 and
// rounding is monotone), so a candidate already beyond the k-th best distance is dropped there.
// Each check is a full horizontal reduction: on MNIST (784-d) every 8 blocks ran 5-9% faster per
// query than every 4 (load-tests/reports/engine-mnist-profile.md); 12 and 16 were no better than 8.
constexpr int kCheckBlocks = 8;

__attribute__((target("avx512f,fma"))) float squared_l2_bounded_avx512(const float* x, const float* y, int n,
                                                                       float bound) {
  float r = 0;
  if (n > 15) {
    __m512 acc = _mm512_setzero_ps();
    int blocks = 0;
    for (; n > 15; n -= 16, x += 16, y += 16) {
      const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x), _mm512_loadu_ps(y));
      acc = _mm512_fmadd_ps(d, d, acc);
      if (++blocks == kCheckBlocks && n > 31) {
        blocks = 0;
        const float partial = _mm512_reduce_add_ps(acc);
        if (partial > bound) return partial;
      }
    }
    r = _mm512_reduce_add_ps(acc);
  }
  return squared_l2_tail_avx512(x, y, n, r);
}

__attribute__((target("avx512f,fma"))) float l1_bounded_avx512(const float* x, const float* y, int n, float bound) {
  float r = 0;
  if (n > 15) {
    __m512 acc = _mm512_setzero_ps();
    int blocks = 0;
    for (; n > 15; n -= 16, x += 16, y += 16) {
      const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x), _mm512_loadu_ps(y));
      acc = _mm512_add_ps(acc, _mm512_abs_ps(d));
      if (++blocks == kCheckBlocks && n > 31) {
        blocks = 0;
        const float partial = _mm512_reduce_add_ps(acc);
        if (partial > bound) return partial;
      }
    }
    r = _mm512_reduce_add_ps(acc);
  }
  for (; n > 0; --n) r += std::fabs(*x++ - *y++);
  return r;
}

__attribute__((target("avx512f,fma"))) float l1_avx512(const float* x, const float* y, int n) {
  float r = 0;
  if (n > 15) {
    __m512 acc = _mm512_setzero_ps();
    for (; n > 15; n -= 16, x += 16, y += 16) {
      const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x), _mm512_loadu_ps(y));
      acc = _mm512_add_ps(acc, _mm512_abs_ps(d));
    }
    r = _mm512_reduce_add_ps(acc);
  }
  for (; n > 0; --n) r += std::fabs(*x++ - *y++);
  return r;
}

#endif  // CANOPY_X86

Level detect_level() {
#ifdef CANOPY_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) return Level::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Level::Avx2;
#endif
  return Level::Scalar;
}

}  // namespace

Kernels kernels_for(Level level) {
#ifdef CANOPY_X86
  __builtin_cpu_init();
  auto hamming = __builtin_cpu_supports("popcnt") ? hamming_popcnt : hamming_scalar;
  switch (level) {
    case Level::Avx512:
      return {level, true, dot_avx512, dot_short_tail_avx512, squared_l2_avx512, l1_avx512, squared_l2_bounded_avx512, l1_bounded_avx512, hamming, mean_update_fma, dot_many_avx512};
    case Level::Avx2:
      return {level, true, dot_avx2, dot_avx2, squared_l2_avx2, l1_avx2, squared_l2_bounded_avx2, l1_bounded_avx2, hamming, mean_update_fma, dot_many_avx2};
    case Level::Scalar:
      break;
  }
  return {Level::Scalar, false, dot_scalar, dot_scalar, squared_l2_scalar, l1_scalar, squared_l2_bounded_scalar, l1_bounded_scalar, hamming, mean_update_scalar, dot_many_scalar};
#else
  (void)level;
  return {Level::Scalar, false, dot_scalar, dot_scalar, squared_l2_scalar, l1_scalar, squared_l2_bounded_scalar, l1_bounded_scalar, hamming_scalar, mean_update_scalar, dot_many_scalar};
#endif
}

const Kernels kKernels = kernels_for(detect_level());

float approx_sqrt(float x) {
#ifdef CANOPY_X86
  if (x == 0) return 0;
  const float e = _mm_cvtss_f32(_mm_rsqrt_ps(_mm_set1_ps(x)));
  const float ex = e * x;
  return madd(e, ex, -3.0f) * (ex * -0.5f);
#else
  return std::sqrt(x);
#endif
}

float fast_rsqrt(float x) {
#ifdef CANOPY_X86
  const float e = _mm_cvtss_f32(_mm_rsqrt_ss(_mm_set_ss(x)));
  return madd(x * e, e, -3.0f) * (-0.5f * e);
#else
  return 1.0f / std::sqrt(x);
#endif
}

const char* level_name(Level level) {
  switch (level) {
    case Level::Avx512: return "avx512";
    case Level::Avx2: return "avx2";
    case Level::Scalar: return "scalar";
  }
  return "unknown";
}

}  // namespace canopy::simd
