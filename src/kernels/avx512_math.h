#pragma once
// Functions of 16 floats for the models' AVX-512 kernels, which are marked SD_AVX512 and run
// only where cpu_has_avx512(); the rest of the build stays baseline x86-64.

// GCC 12's AVX-512 intrinsics start masked operations and extractions from
// _mm512_undefined_ps / _mm256_undefined_pd, which -W(maybe-)uninitialized take for a read of
// an uninitialised value.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>

#define SD_AVX512 __attribute__((target("avx512f,avx512dq")))
// And the BF16 extension (Cooper Lake, Sapphire Rapids and later, Zen 4): rounding to bf16.
#define SD_AVX512_BF16 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx512bf16")))

namespace sd::kernels::avx512 {

// AVX-512 Foundation and its Doubleword/Quadword instructions (every AVX-512 CPU since 2017).
inline bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
  return has;
}

constexpr int64_t kLanes = 16;  // floats per register

inline int64_t padded(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

// Lanes [0, n) of the last block of a row of n (all 16 when n is a multiple of 16).
inline __mmask16 tail_mask(int64_t n) {
  const int64_t rest = n % kLanes;
  return rest == 0 ? __mmask16(0xFFFF) : __mmask16((1u << rest) - 1);
}

// The lanes of block j of a row of n: all 16, or the tail's.
inline __mmask16 block_mask(int64_t j, int64_t n) {
  return j + kLanes <= n ? __mmask16(0xFFFF) : tail_mask(n);
}

// e^x (Cephes' expf: x = n ln2 + r, e^r by a degree-6 polynomial, 2^n by scalef; 1-2 ulp).
SD_AVX512 inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));  // e^x underflows below
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// 2^x to 3e-6 relative, for values rounded to bf16 next (whose rounding is 1000 times that):
// x = n + f with f in [0, 1) (AVX-512DQ's reduce), 2^f by a degree-4 minimax polynomial, 2^n
// by scalef. Half the operations of exp16.
SD_AVX512 inline __m512 exp2_16_for_bf16(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-127.0f));  // 2^x underflows below (and -inf has no f)
  const __m512 f = _mm512_reduce_ps(x, _MM_FROUND_TO_NEG_INF);
  __m512 p = _mm512_set1_ps(1.3534157536923885e-2f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.2011482417583466e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4144273996353150e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9300383329391479e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0000026226043701f));
  return _mm512_scalef_ps(p, x);  // p 2^floor(x)
}

// erf(x) by Abramowitz and Stegun 7.1.26 (absolute error 1.5e-7), the formula of ATen's own
// vectorised erf: sign(x) (1 - t (p1 + p2 t + ... + p5 t^4) e^(-x^2)), t = 1 / (1 + p |x|).
SD_AVX512 inline __m512 erf16(__m512 x) {
  const __m512 sign = _mm512_and_ps(x, _mm512_set1_ps(-0.0f));
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 t =
      _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), _mm512_abs_ps(x), one));
  __m512 r = _mm512_fmadd_ps(_mm512_set1_ps(1.061405429f), t, _mm512_set1_ps(-1.453152027f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(1.421413741f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-0.284496736f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(0.254829592f));
  const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(x, x)));
  return _mm512_xor_ps(sign, _mm512_fnmadd_ps(_mm512_mul_ps(e, t), r, one));
}

// GELU (exact): x Φ(x), Φ(x) = (1 + erf(x / √2)) / 2.
SD_AVX512 inline __m512 gelu16(__m512 x) {
  const __m512 erf = erf16(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f)));
  return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)),
                       _mm512_add_ps(_mm512_set1_ps(1.0f), erf));
}

// GELU's derivative: Φ(x) + x φ(x), φ(x) = e^(-x²/2) / √(2π).
SD_AVX512 inline __m512 gelu_derivative16(__m512 x) {
  const __m512 half = _mm512_set1_ps(0.5f);
  const __m512 cdf = _mm512_mul_ps(
      half, _mm512_add_ps(_mm512_set1_ps(1.0f),
                          erf16(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f)))));
  const __m512 pdf = _mm512_mul_ps(exp16(_mm512_mul_ps(_mm512_mul_ps(x, x), _mm512_set1_ps(-0.5f))),
                                   _mm512_set1_ps(0.39894228040143268f));
  return _mm512_fmadd_ps(x, pdf, cdf);
}

}  // namespace sd::kernels::avx512
