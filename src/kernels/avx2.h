#pragma once
// AVX2 + FMA code compiled beside the baseline x86-64 build: functions marked SD_AVX2 run only
// where cpu_has_avx2_fma(). Functions of 8 floats that more than one kernel uses.

#define SD_AVX2 __attribute__((target("avx2,fma")))

#include <immintrin.h>

#include <cstdint>

namespace sd::kernels {

constexpr int64_t kLanes = 8;  // floats per AVX2 register

inline bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

// The lanes [0, n) of a block of 8, all bits set: a mask for blends, ands and masked loads.
SD_AVX2 inline __m256i first_lanes(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The block of 8 at x + i of an array of n floats, the lanes past n zero: masked loads and stores
// only for the array's tail, since AMD's masked stores are microcoded, many times slower than
// plain ones.
SD_AVX2 inline __m256 load(const float* x, int64_t i, int64_t n) {
  return i + kLanes <= n ? _mm256_loadu_ps(x + i) : _mm256_maskload_ps(x + i, first_lanes(n - i));
}

SD_AVX2 inline void store(float* x, int64_t i, int64_t n, __m256 v) {
  if (i + kLanes <= n)
    _mm256_storeu_ps(x + i, v);
  else
    _mm256_maskstore_ps(x + i, first_lanes(n - i), v);
}

// e^x for x <= 88: Cephes' expf as avx512::exp16, 2^n made in the exponent's bits. A NaN stays
// NaN (max and min return their second operand for it).
SD_AVX2 inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(88.0f), _mm256_max_ps(_mm256_set1_ps(-87.3f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i two_to_n = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);  // n in [-126, 127]
  return _mm256_mul_ps(p, _mm256_castsi256_ps(two_to_n));
}

SD_AVX2 inline float horizontal_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

SD_AVX2 inline double horizontal_sum(__m256d v) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// erf(x) by Abramowitz and Stegun 7.1.26, as avx512::erf16 (the formula of ATen's vectorised
// erf).
SD_AVX2 inline __m256 erf8(__m256 x) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  const __m256 sign = _mm256_and_ps(x, sign_bit), one = _mm256_set1_ps(1.0f);
  const __m256 t = _mm256_div_ps(
      one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), _mm256_andnot_ps(sign_bit, x), one));
  __m256 r = _mm256_fmadd_ps(_mm256_set1_ps(1.061405429f), t, _mm256_set1_ps(-1.453152027f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(1.421413741f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(-0.284496736f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(0.254829592f));
  const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(x, x)));
  return _mm256_xor_ps(sign, _mm256_fnmadd_ps(_mm256_mul_ps(e, t), r, one));
}

// GELU (exact): x Φ(x), Φ(x) = (1 + erf(x / √2)) / 2.
SD_AVX2 inline __m256 gelu8(__m256 x) {
  const __m256 erf = erf8(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)));
  return _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.5f)),
                       _mm256_add_ps(_mm256_set1_ps(1.0f), erf));
}

// GELU's derivative: Φ(x) + x φ(x), φ(x) = e^(-x²/2) / √(2π).
SD_AVX2 inline __m256 gelu_derivative8(__m256 x) {
  const __m256 cdf =
      _mm256_mul_ps(_mm256_set1_ps(0.5f),
                    _mm256_add_ps(_mm256_set1_ps(1.0f),
                                  erf8(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)))));
  const __m256 pdf = _mm256_mul_ps(exp8(_mm256_mul_ps(_mm256_mul_ps(x, x), _mm256_set1_ps(-0.5f))),
                                   _mm256_set1_ps(0.39894228040143268f));
  return _mm256_fmadd_ps(x, pdf, cdf);
}

}  // namespace sd::kernels
