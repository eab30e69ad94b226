#include "kernels/layer_norm.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>

#include <cmath>

#include "kernels/autograd.h"
#include "kernels/avx512_math.h"
#include "util/cpu.h"

namespace sd::kernels {
namespace {

using avx512::block_mask;
using avx512::kLanes;

// One row of n values: (x - mean) / sqrt(var + eps) · weight + bias as bf16 into `out`.
SD_AVX512_BF16 void normalise_row(const float* x, const float* weight, const float* bias, int64_t n,
                                  float eps, c10::BFloat16* out) {
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += kLanes)
    sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(block_mask(j, n), x + j));
  const float mean = _mm512_reduce_add_ps(sum) / float(n);
  const __m512 vmean = _mm512_set1_ps(mean);
  __m512 squares = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += kLanes) {
    const __mmask16 m = block_mask(j, n);
    const __m512 centred = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + j), vmean);
    squares = _mm512_fmadd_ps(centred, centred, squares);
  }
  const float rstd = 1.0f / std::sqrt(_mm512_reduce_add_ps(squares) / float(n) + eps);
  const __m512 vrstd = _mm512_set1_ps(rstd);
  for (int64_t j = 0; j < n; j += kLanes) {
    const __mmask16 m = block_mask(j, n);
    const __m512 normal =
        _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), vmean), vrstd);
    const __m512 y = _mm512_fmadd_ps(normal, _mm512_maskz_loadu_ps(m, weight + j),
                                     _mm512_maskz_loadu_ps(m, bias + j));
    _mm256_mask_storeu_epi16(out + j, m, (__m256i)_mm512_cvtneps_pbh(y));
  }
}

}  // namespace

at::Tensor layer_norm_to_bf16(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                              double eps) {
  const int64_t n = x.dim() > 0 ? x.size(-1) : 0;
  const auto fp32 = [](const at::Tensor& t) {
    return t.defined() && t.scalar_type() == at::kFloat && t.is_contiguous() && t.is_cpu();
  };
  const bool autograd = autograd_records(x, weight, bias);
  if (!avx512::cpu_has_avx512() || !cpu_has("avx512_bf16") || autograd || n == 0 || !fp32(x) ||
      !fp32(weight) || !fp32(bias) || weight.numel() != n || bias.numel() != n)
    return {};
  at::Tensor out = at::empty(x.sizes(), x.options().dtype(at::kBFloat16));
  const float* px = x.data_ptr<float>();
  const float* pw = weight.data_ptr<float>();
  const float* pb = bias.data_ptr<float>();
  c10::BFloat16* po = out.data_ptr<c10::BFloat16>();
  at::parallel_for(0, x.numel() / n, 64, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row)
      normalise_row(px + row * n, pw, pb, n, float(eps), po + row * n);
  });
  return out;
}

}  // namespace sd::kernels
