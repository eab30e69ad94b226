#include "models/depthwise_conv.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <array>

#include "models/avx512_math.h"

namespace sd::models {
namespace {

using namespace avx512;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using Kernel = std::array<float, 9>;  // row-major 3 x 3

// Lanes l of `m` with 0 <= start + l < limit: the columns of a row that exist.
__mmask16 columns_within(int64_t start, int64_t limit, __mmask16 m) {
  const int64_t lo = std::max<int64_t>(0, -start), hi = std::min<int64_t>(kLanes, limit - start);
  if (hi <= lo) return 0;
  const uint32_t below_hi = hi >= kLanes ? 0xFFFFu : (1u << hi) - 1;
  return __mmask16(below_hi & ~((1u << lo) - 1)) & m;
}

// The three columns j - 1, j, j + 1 of row `row` (W wide) for the 16 outputs at j; zero
// outside the row (the padding).
struct Taps {
  __m512 left, centre, right;
};

SD_AVX512 Taps taps(const float* row, int64_t j, int64_t width, __mmask16 m) {
  return {_mm512_maskz_loadu_ps(columns_within(j - 1, width, m), row + j - 1),
          _mm512_maskz_loadu_ps(m, row + j),
          _mm512_maskz_loadu_ps(columns_within(j + 1, width, m), row + j + 1)};
}

// out = x filtered by `k` (H x W plane, zero padding 1).
SD_AVX512 void filter_plane(const float* x, const Kernel& k, float* out, int64_t height,
                            int64_t width) {
  for (int64_t i = 0; i < height; ++i)
    for (int64_t j = 0; j < width; j += kLanes) {
      const __mmask16 m = block_mask(j, width);
      __m512 acc = _mm512_setzero_ps();
      for (int64_t di = 0; di < 3; ++di) {
        const int64_t r = i + di - 1;
        if (r < 0 || r >= height) continue;
        const Taps t = taps(x + r * width, j, width, m);
        acc = _mm512_fmadd_ps(_mm512_set1_ps(k[3 * di]), t.left, acc);
        acc = _mm512_fmadd_ps(_mm512_set1_ps(k[3 * di + 1]), t.centre, acc);
        acc = _mm512_fmadd_ps(_mm512_set1_ps(k[3 * di + 2]), t.right, acc);
      }
      _mm512_mask_storeu_ps(out + i * width + j, m, acc);
    }
}

// sums[t] += Σ grad[i][j] · x[i + di - 1][j + dj - 1] for tap t = 3 di + dj, over one plane:
// in float for 16 rows at a time, then in double.
SD_AVX512 void add_weight_gradient(const float* x, const float* grad, int64_t height, int64_t width,
                                   std::array<double, 9>& sums) {
  constexpr int64_t kRowsInFloat = 16;
  __m512 acc[9];
  for (__m512& a : acc) a = _mm512_setzero_ps();
  for (int64_t i = 0; i < height; ++i) {
    if (i % kRowsInFloat == 0 && i > 0)
      for (int t = 0; t < 9; ++t) {
        sums[t] += _mm512_reduce_add_ps(acc[t]);
        acc[t] = _mm512_setzero_ps();
      }
    for (int64_t j = 0; j < width; j += kLanes) {
      const __mmask16 m = block_mask(j, width);
      const __m512 g = _mm512_maskz_loadu_ps(m, grad + i * width + j);
      for (int64_t di = 0; di < 3; ++di) {
        const int64_t r = i + di - 1;
        if (r < 0 || r >= height) continue;
        const Taps t = taps(x + r * width, j, width, m);
        acc[3 * di] = _mm512_fmadd_ps(g, t.left, acc[3 * di]);
        acc[3 * di + 1] = _mm512_fmadd_ps(g, t.centre, acc[3 * di + 1]);
        acc[3 * di + 2] = _mm512_fmadd_ps(g, t.right, acc[3 * di + 2]);
      }
    }
  }
  for (int t = 0; t < 9; ++t) sums[t] += _mm512_reduce_add_ps(acc[t]);
}

Kernel kernel_of(const float* weight, int64_t c) {
  Kernel k;
  std::copy(weight + 9 * c, weight + 9 * c + 9, k.begin());
  return k;
}

struct DepthwiseConvFunction : torch::autograd::Function<DepthwiseConvFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight) {
    ctx->save_for_backward({x, weight});
    const int64_t batch = x.size(0), channels = x.size(1), h = x.size(2), w = x.size(3);
    at::Tensor out = at::empty_like(x);
    const float *in = x.data_ptr<float>(), *k = weight.data_ptr<float>();
    float* y = out.data_ptr<float>();
    at::parallel_for(0, batch * channels, 1, [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane)
        filter_plane(in + plane * h * w, kernel_of(k, plane % channels), y + plane * h * w, h, w);
    });
    return out;
  }

  // dx = grad filtered by the kernel turned half a turn; dweight[c] = Σ grad · shifted x.
  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1];
    const at::Tensor grad = grad_out[0].contiguous();
    const int64_t batch = x.size(0), channels = x.size(1), h = x.size(2), w = x.size(3);
    at::Tensor dx = at::empty_like(x), dweight = at::empty_like(weight);
    const float *in = x.data_ptr<float>(), *k = weight.data_ptr<float>();
    const float* g = grad.data_ptr<float>();
    float *dx_of = dx.data_ptr<float>(), *dw = dweight.data_ptr<float>();
    at::parallel_for(0, channels, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        Kernel flipped = kernel_of(k, c);
        std::reverse(flipped.begin(), flipped.end());
        std::array<double, 9> sums{};
        for (int64_t n = 0; n < batch; ++n) {
          const int64_t at = (n * channels + c) * h * w;
          filter_plane(g + at, flipped, dx_of + at, h, w);
          add_weight_gradient(in + at, g + at, h, w, sums);
        }
        for (int t = 0; t < 9; ++t) dw[9 * c + t] = float(sums[t]);
      }
    });
    return {dx, dweight};
  }
};

}  // namespace

bool depthwise_conv3x3_applies(const at::Tensor& x, const at::Tensor& weight, int64_t stride,
                               int64_t padding, int64_t groups) {
  return cpu_has_avx512() && stride == 1 && padding == 1 && x.dim() == 4 && x.device().is_cpu() &&
         x.scalar_type() == at::kFloat && x.is_contiguous() && groups == x.size(1) &&
         weight.scalar_type() == at::kFloat && weight.is_contiguous() &&
         weight.sizes() == at::IntArrayRef{x.size(1), 1, 3, 3};
}

at::Tensor depthwise_conv3x3(const at::Tensor& x, const at::Tensor& weight) {
  return DepthwiseConvFunction::apply(x, weight);
}

}  // namespace sd::models
