#include "code_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#if defined(__x86_64__) || defined(__i386__)
// GCC 12 headers trip -Wmaybe-uninitialized / -Wuninitialized inside _mm512_reduce_add_*.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#define CANOPY_X86 1
#endif

namespace canopy::code_kernels {
namespace {

// ---- scalar ----

int32_t dot_u8_s8_scalar(const uint8_t* x, const int8_t* y, int n) {
  int32_t r = 0;
  for (int i = 0; i < n; ++i) r += static_cast<int32_t>(x[i]) * y[i];
  return r;
}

uint32_t sad_u8_scalar(const uint8_t* x, const uint8_t* y, int n) {
  uint32_t r = 0;
  for (int i = 0; i < n; ++i) r += static_cast<uint32_t>(std::abs(static_cast<int>(x[i]) - static_cast<int>(y[i])));
  return r;
}

float dot_s8_f32_scalar(const int8_t* x, const float* q, int n) {
  float r = 0;
  for (int i = 0; i < n; ++i) r += static_cast<float>(x[i]) * q[i];
  return r;
}

float l2_u8_f32_scalar(const uint8_t* x, const float* scale, const float* p, int n) {
  float r = 0;
  for (int i = 0; i < n; ++i) {
    const float d = scale[i] * static_cast<float>(x[i]) - p[i];
    r += d * d;
  }
  return r;
}

// Inlined into each caller, so __builtin_popcountll becomes the popcnt instruction where the caller's
// target has it.
__attribute__((always_inline)) inline MaskedSum masked_sum4_body(const uint64_t* bits, const uint64_t* planes, int words) {
  MaskedSum sum{0, 0};
  for (int w = 0; w < words; ++w) sum.ones += static_cast<uint32_t>(__builtin_popcountll(bits[w]));
  for (int p = 0; p < 4; ++p) {
    uint32_t count = 0;
    for (int w = 0; w < words; ++w) count += static_cast<uint32_t>(__builtin_popcountll(bits[w] & planes[p * words + w]));
    sum.weighted += count << p;
  }
  return sum;
}

MaskedSum masked_sum4_scalar(const uint64_t* bits, const uint64_t* planes, int words) {
  return masked_sum4_body(bits, planes, words);
}

void rotation_round_scalar(float* v, const float* factors, int n) {
  for (int i = 0; i < n; ++i) v[i] *= factors[i];
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

SignSums sign_code_scalar(const float* r, const float* c, int n, uint64_t* bits) {
  double squares[4] = {0, 0, 0, 0};
  double lengths[4] = {0, 0, 0, 0};
  std::fill(bits, bits + n / 64, 0);
  for (int j = 0; j < n; ++j) {
    const float d = r[j] - c[j];
    squares[j % 4] += static_cast<double>(d) * d;
    lengths[j % 4] += std::fabs(static_cast<double>(d));
    bits[j / 64] |= static_cast<uint64_t>(d > 0) << (j % 64);
  }
  return {(squares[0] + squares[1]) + (squares[2] + squares[3]), (lengths[0] + lengths[1]) + (lengths[2] + lengths[3])};
}

void quantize_u8_scalar(const float* x, const float* offset, const float* scale, int n, uint8_t* codes) {
  for (int j = 0; j < n; ++j) {
    const float c = std::nearbyint((x[j] - offset[j]) / scale[j]);
    codes[j] = static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, c)));  // NaN: max gives 0
  }
}

void quantize_s8_scalar(const float* x, float scale, int n, int8_t* codes) {
  for (int j = 0; j < n; ++j) {
    const float c = std::nearbyint(x[j] / scale);
    codes[j] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, c)));  // NaN: max gives -127
  }
}

#ifdef CANOPY_X86

__attribute__((target("popcnt"))) MaskedSum masked_sum4_popcnt(const uint64_t* bits, const uint64_t* planes, int words) {
  return masked_sum4_body(bits, planes, words);
}

// ---- AVX2: widen to 16 bits, multiply-add pairs into 32-bit lanes (_mm256_madd_epi16) ----

__attribute__((target("avx2"))) int32_t hsum_epi32_256(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

__attribute__((target("avx2"))) int32_t dot_u8_s8_avx2(const uint8_t* x, const int8_t* y, int n) {
  __m256i acc = _mm256_setzero_si256();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i a = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    const __m256i b = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y + i)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
  }
  return hsum_epi32_256(acc) + dot_u8_s8_scalar(x + i, y + i, n - i);
}

__attribute__((target("avx2"))) uint32_t sad_u8_avx2(const uint8_t* x, const uint8_t* y, int n) {
  __m256i acc = _mm256_setzero_si256();
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y + i));
    acc = _mm256_add_epi64(acc, _mm256_sad_epu8(a, b));
  }
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
  return static_cast<uint32_t>(lanes[0] + lanes[1] + lanes[2] + lanes[3]) + sad_u8_scalar(x + i, y + i, n - i);
}

__attribute__((target("avx2"))) float hsum_ps_256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) float dot_s8_f32_avx2(const int8_t* x, const float* q, int n) {
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i w = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + i)));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(w), _mm256_loadu_ps(q + i), acc);
  }
  return hsum_ps_256(acc) + dot_s8_f32_scalar(x + i, q + i, n - i);
}

__attribute__((target("avx2,fma"))) float l2_u8_f32_avx2(const uint8_t* x, const float* scale, const float* p, int n) {
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 c = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + i))));
    const __m256 d = _mm256_fmsub_ps(_mm256_loadu_ps(scale + i), c, _mm256_loadu_ps(p + i));
    acc = _mm256_fmadd_ps(d, d, acc);
  }
  return hsum_ps_256(acc) + l2_u8_f32_scalar(x + i, scale + i, p + i, n - i);
}

// One stride h (1, 2 or 4) of the Walsh-Hadamard transform inside a register: `partner` holds each lane's pair
// member; the lower member of a pair keeps a + b, the upper one a - b (partner - self).
template <int kBlend>
__attribute__((target("avx2"))) inline __m256 butterfly_in_register(__m256 x, __m256 partner) {
  return _mm256_blend_ps(_mm256_add_ps(x, partner), _mm256_sub_ps(partner, x), kBlend);
}

__attribute__((target("avx2"))) void rotation_round_avx2(float* v, const float* factors, int n) {
  for (int i = 0; i < n; i += 8) {
    __m256 x = _mm256_mul_ps(_mm256_loadu_ps(v + i), _mm256_loadu_ps(factors + i));
    x = butterfly_in_register<0xAA>(x, _mm256_permute_ps(x, 0xB1));  // stride 1: lanes 1 0 3 2
    x = butterfly_in_register<0xCC>(x, _mm256_permute_ps(x, 0x4E));  // stride 2: lanes 2 3 0 1
    x = butterfly_in_register<0xF0>(x, _mm256_permute2f128_ps(x, x, 0x01));  // stride 4: halves swapped
    _mm256_storeu_ps(v + i, x);
  }
  int h = 8;
  for (; 4 * h <= n; h *= 4) {  // strides h and 2h in one pass over the data, each value's sums unchanged
    for (int i = 0; i < n; i += 4 * h) {
      for (int j = i; j < i + h; j += 8) {
        const __m256 a = _mm256_loadu_ps(v + j);
        const __m256 b = _mm256_loadu_ps(v + j + h);
        const __m256 c = _mm256_loadu_ps(v + j + 2 * h);
        const __m256 d = _mm256_loadu_ps(v + j + 3 * h);
        const __m256 ab = _mm256_add_ps(a, b), a_b = _mm256_sub_ps(a, b);
        const __m256 cd = _mm256_add_ps(c, d), c_d = _mm256_sub_ps(c, d);
        _mm256_storeu_ps(v + j, _mm256_add_ps(ab, cd));
        _mm256_storeu_ps(v + j + h, _mm256_add_ps(a_b, c_d));
        _mm256_storeu_ps(v + j + 2 * h, _mm256_sub_ps(ab, cd));
        _mm256_storeu_ps(v + j + 3 * h, _mm256_sub_ps(a_b, c_d));
      }
    }
  }
  if (2 * h <= n) {  // an odd number of strides from 8 up: the last alone
    for (int j = 0; j < h; j += 8) {
      const __m256 a = _mm256_loadu_ps(v + j);
      const __m256 b = _mm256_loadu_ps(v + j + h);
      _mm256_storeu_ps(v + j, _mm256_add_ps(a, b));
      _mm256_storeu_ps(v + j + h, _mm256_sub_ps(a, b));
    }
  }
}

// Four double lanes hold the partial sums j mod 4: 8 differences at a time, low half then high half.
__attribute__((target("avx2"))) SignSums sign_code_avx2(const float* r, const float* c, int n, uint64_t* bits) {
  __m256d squares = _mm256_setzero_pd();
  __m256d lengths = _mm256_setzero_pd();
  const __m256d magnitude = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
  for (int w = 0; w < n / 64; ++w) {
    uint64_t word = 0;
    for (int k = 0; k < 8; ++k) {
      const int j = 64 * w + 8 * k;
      const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(r + j), _mm256_loadu_ps(c + j));
      word |= static_cast<uint64_t>(_mm256_movemask_ps(_mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_GT_OQ))) << (8 * k);
      const __m256d low = _mm256_cvtps_pd(_mm256_castps256_ps128(d));
      const __m256d high = _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1));
      squares = _mm256_add_pd(_mm256_add_pd(squares, _mm256_mul_pd(low, low)), _mm256_mul_pd(high, high));
      lengths = _mm256_add_pd(_mm256_add_pd(lengths, _mm256_and_pd(low, magnitude)), _mm256_and_pd(high, magnitude));
    }
    bits[w] = word;
  }
  alignas(32) double s[4];
  alignas(32) double l[4];
  _mm256_store_pd(s, squares);
  _mm256_store_pd(l, lengths);
  return {(s[0] + s[1]) + (s[2] + s[3]), (l[0] + l[1]) + (l[2] + l[3])};
}

__attribute__((target("avx2"))) void quantize_u8_avx2(const float* x, const float* offset, const float* scale, int n, uint8_t* codes) {
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 q = _mm256_div_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(offset + j)), _mm256_loadu_ps(scale + j));
    __m256 c = _mm256_round_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    c = _mm256_min_ps(_mm256_max_ps(c, _mm256_setzero_ps()), _mm256_set1_ps(255.0f));  // max(NaN, 0) is 0
    const __m256i i32 = _mm256_cvtps_epi32(c);
    const __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i32), _mm256_extracti128_si256(i32, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(codes + j), _mm_packus_epi16(i16, i16));
  }
  quantize_u8_scalar(x + j, offset + j, scale + j, n - j, codes + j);
}

__attribute__((target("avx2"))) void quantize_s8_avx2(const float* x, float scale, int n, int8_t* codes) {
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 c = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + j), _mm256_set1_ps(scale)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    c = _mm256_min_ps(_mm256_max_ps(c, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));  // max(NaN, -127) is -127
    const __m256i i32 = _mm256_cvtps_epi32(c);
    const __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i32), _mm256_extracti128_si256(i32, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(codes + j), _mm_packs_epi16(i16, i16));
  }
  quantize_s8_scalar(x + j, scale, n - j, codes + j);
}

// ---- AVX-512 with VNNI: 64 byte products per instruction (vpdpbusd), masked tails ----

__attribute__((target("avx512f,avx512bw,avx512vnni"))) int32_t dot_u8_s8_vnni(const uint8_t* x, const int8_t* y, int n) {
  __m512i acc = _mm512_setzero_si512();
  int i = 0;
  for (; i + 64 <= n; i += 64) {
    acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(x + i), _mm512_loadu_si512(y + i));
  }
  if (i < n) {
    const __mmask64 m = ~uint64_t{0} >> (64 - (n - i));  // n - i in 1..63
    acc = _mm512_dpbusd_epi32(acc, _mm512_maskz_loadu_epi8(m, x + i), _mm512_maskz_loadu_epi8(m, y + i));
  }
  return _mm512_reduce_add_epi32(acc);
}

__attribute__((target("avx512f,avx512bw"))) uint32_t sad_u8_avx512(const uint8_t* x, const uint8_t* y, int n) {
  __m512i acc = _mm512_setzero_si512();
  int i = 0;
  for (; i + 64 <= n; i += 64) acc = _mm512_add_epi64(acc, _mm512_sad_epu8(_mm512_loadu_si512(x + i), _mm512_loadu_si512(y + i)));
  if (i < n) {
    const __mmask64 m = ~uint64_t{0} >> (64 - (n - i));  // n - i in 1..63
    acc = _mm512_add_epi64(acc, _mm512_sad_epu8(_mm512_maskz_loadu_epi8(m, x + i), _mm512_maskz_loadu_epi8(m, y + i)));
  }
  return static_cast<uint32_t>(_mm512_reduce_add_epi64(acc));
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) float dot_s8_f32_avx512(const int8_t* x, const float* q, int n) {
  __m512 acc = _mm512_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i w = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(w), _mm512_loadu_ps(q + i), acc);
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512i w = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, x + i));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(w), _mm512_maskz_loadu_ps(m, q + i), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) float l2_u8_f32_avx512(const uint8_t* x, const float* scale, const float* p, int n) {
  __m512 acc = _mm512_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 c = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
    const __m512 d = _mm512_fmsub_ps(_mm512_loadu_ps(scale + i), c, _mm512_loadu_ps(p + i));
    acc = _mm512_fmadd_ps(d, d, acc);
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 c = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, x + i)));
    const __m512 d = _mm512_fmsub_ps(_mm512_maskz_loadu_ps(m, scale + i), c, _mm512_maskz_loadu_ps(m, p + i));
    acc = _mm512_fmadd_ps(d, d, acc);
  }
  return _mm512_reduce_add_ps(acc);
}

__attribute__((target("avx512f,avx512vpopcntdq"))) MaskedSum masked_sum4_vpopcnt(const uint64_t* bits, const uint64_t* planes,
                                                                                int words) {
  if (words % 8 != 0) return masked_sum4_popcnt(bits, planes, words);
  __m512i weighted = _mm512_setzero_si512();
  __m512i ones = _mm512_setzero_si512();
  for (int w = 0; w < words; w += 8) {
    const __m512i b = _mm512_loadu_si512(bits + w);
    ones = _mm512_add_epi64(ones, _mm512_popcnt_epi64(b));
    for (int p = 0; p < 4; ++p) {
      const __m512i c = _mm512_popcnt_epi64(_mm512_and_si512(b, _mm512_loadu_si512(planes + p * words + w)));
      weighted = _mm512_add_epi64(weighted, _mm512_slli_epi64(c, static_cast<unsigned>(p)));
    }
  }
  return {static_cast<uint32_t>(_mm512_reduce_add_epi64(weighted)), static_cast<uint32_t>(_mm512_reduce_add_epi64(ones))};
}

#endif  // CANOPY_X86

Level detect_level() {
#ifdef CANOPY_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512vnni")) {
    return Level::Avx512Vnni;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Level::Avx2;
#endif
  return Level::Scalar;
}

}  // namespace

Kernels kernels_for(Level level) {
#ifdef CANOPY_X86
  __builtin_cpu_init();
  const bool popcnt = __builtin_cpu_supports("popcnt");
  auto sum4 = popcnt ? masked_sum4_popcnt : masked_sum4_scalar;
  switch (level) {
    case Level::Avx512Vnni:
      if (__builtin_cpu_supports("avx512vpopcntdq")) sum4 = masked_sum4_vpopcnt;
      return {level, dot_u8_s8_vnni, sad_u8_avx512, dot_s8_f32_avx512, l2_u8_f32_avx512, sum4,
              rotation_round_avx2, sign_code_avx2, quantize_u8_avx2, quantize_s8_avx2};
    case Level::Avx2:
      return {level, dot_u8_s8_avx2, sad_u8_avx2, dot_s8_f32_avx2, l2_u8_f32_avx2, sum4,
              rotation_round_avx2, sign_code_avx2, quantize_u8_avx2, quantize_s8_avx2};
    case Level::Scalar:
      break;
  }
  return {Level::Scalar, dot_u8_s8_scalar, sad_u8_scalar, dot_s8_f32_scalar, l2_u8_f32_scalar, sum4,
          rotation_round_scalar, sign_code_scalar, quantize_u8_scalar, quantize_s8_scalar};
#else
  (void)level;
  return {Level::Scalar, dot_u8_s8_scalar, sad_u8_scalar, dot_s8_f32_scalar, l2_u8_f32_scalar, masked_sum4_scalar,
          rotation_round_scalar, sign_code_scalar, quantize_u8_scalar, quantize_s8_scalar};
#endif
}

const Kernels kKernels = kernels_for(detect_level());

const char* level_name(Level level) {
  switch (level) {
    case Level::Avx512Vnni: return "avx512-vnni";
    case Level::Avx2: return "avx2";
    case Level::Scalar: return "scalar";
  }
  return "unknown";
}

}  // namespace canopy::code_kernels
