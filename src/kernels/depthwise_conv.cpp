#include "kernels/depthwise_conv.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <array>
#include <vector>

#include "kernels/avx512_math.h"
#include "kernels/depthwise_conv_planes.h"
#include "kernels/train_layout.h"

namespace sd::kernels {
namespace {

using namespace avx512;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// A channels-last N x C x H x W tensor as memory holds it: N x H rows of W pixels of C values.
struct Image {
  int64_t batch, height, width, channels;
  int64_t rows() const { return batch * height; }
  // Rows row - 1, row, row + 1 of row's image; null outside it (the zero padding).
  template <typename T>
  std::array<T*, 3> neighbours(T* x, int64_t row) const {
    const int64_t i = row % height;
    std::array<T*, 3> out{};
    for (int64_t di = 0; di < 3; ++di) {
      const int64_t r = i + di - 1;
      out[di] = r < 0 || r >= height ? nullptr : x + (row + di - 1) * width * channels;
    }
    return out;
  }
};

Image image_of(const at::Tensor& x) { return {x.size(0), x.size(2), x.size(3), x.size(1)}; }
PlaneGrid grid_of(const at::Tensor& x) { return {x.size(0), x.size(1), x.size(2), x.size(3)}; }

// The C x 1 x 3 x 3 weight as 9 taps of C values (padded to whole registers), tap 3 di + dj;
// turned half a turn when `flipped` (the filter of backward's input gradient).
std::vector<float> taps_of(const at::Tensor& weight, bool flipped) {
  const int64_t channels = weight.size(0);
  const float* k = weight.data_ptr<float>();
  std::vector<float> taps(9 * padded(channels), 0.0f);
  for (int64_t c = 0; c < channels; ++c)
    for (int t = 0; t < 9; ++t) taps[(flipped ? 8 - t : t) * padded(channels) + c] = k[9 * c + t];
  return taps;
}

// Output row `row` of x filtered by `taps` (zero padding 1), pixel after pixel.
SD_AVX512 void filter_row(const float* x, const float* taps, float* out, const Image& im,
                          int64_t row) {
  const int64_t C = im.channels, stride = padded(C);
  const std::array<const float*, 3> in = im.neighbours(x, row);
  float* y = out + row * im.width * C;
  for (int64_t j = 0; j < im.width; ++j)
    for (int64_t c0 = 0; c0 < C; c0 += kLanes) {
      const __mmask16 m = block_mask(c0, C);
      __m512 acc = _mm512_setzero_ps();
      for (int di = 0; di < 3; ++di) {
        if (!in[di]) continue;
        const float* p = in[di] + j * C + c0;
        const float* tap = taps + 3 * di * stride + c0;
        if (j > 0)
          acc = _mm512_fmadd_ps(_mm512_loadu_ps(tap), _mm512_maskz_loadu_ps(m, p - C), acc);
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(tap + stride), _mm512_maskz_loadu_ps(m, p), acc);
        if (j + 1 < im.width)
          acc = _mm512_fmadd_ps(_mm512_loadu_ps(tap + 2 * stride), _mm512_maskz_loadu_ps(m, p + C),
                                acc);
      }
      _mm512_mask_storeu_ps(y + j * C + c0, m, acc);
    }
}

// sums[t * padded(C) + c] = Σ_j grad[row][j][c] · x[i + di - 1][j + dj - 1][c] over row `row`,
// tap t = 3 di + dj, in float.
SD_AVX512 void row_weight_gradient(const float* x, const float* grad, const Image& im, int64_t row,
                                   float* sums) {
  const int64_t C = im.channels, stride = padded(C);
  const std::array<const float*, 3> in = im.neighbours(x, row);
  const float* g_row = grad + row * im.width * C;
  std::fill(sums, sums + 9 * stride, 0.0f);
  const auto add = [](float* sum, __m512 g, __m512 v) SD_AVX512 {
    _mm512_storeu_ps(sum, _mm512_fmadd_ps(g, v, _mm512_loadu_ps(sum)));
  };
  for (int64_t j = 0; j < im.width; ++j)
    for (int64_t c0 = 0; c0 < C; c0 += kLanes) {
      const __mmask16 m = block_mask(c0, C);
      const __m512 g = _mm512_maskz_loadu_ps(m, g_row + j * C + c0);
      for (int di = 0; di < 3; ++di) {
        if (!in[di]) continue;
        const float* p = in[di] + j * C + c0;
        float* sum = sums + 3 * di * stride + c0;
        if (j > 0) add(sum, g, _mm512_maskz_loadu_ps(m, p - C));
        add(sum + stride, g, _mm512_maskz_loadu_ps(m, p));
        if (j + 1 < im.width) add(sum + 2 * stride, g, _mm512_maskz_loadu_ps(m, p + C));
      }
    }
}

// conv2d(x, weight, stride 1, padding 1, groups C) of a channels-last x: each output row from
// three input rows in the core's cache, 16 channels at a time.
void filter(const float* x, const std::vector<float>& taps, float* out, const Image& im) {
  at::parallel_for(0, im.rows(), 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) filter_row(x, taps.data(), out, im, row);
  });
}

struct DepthwiseConvFunction : torch::autograd::Function<DepthwiseConvFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight) {
    ctx->save_for_backward({x, weight});
    at::Tensor out = at::empty_like(x);
    if (train_layout(x) == TrainLayout::rows)
      filter(x.data_ptr<float>(), taps_of(weight, false), out.data_ptr<float>(), image_of(x));
    else
      filter_planes(x.data_ptr<float>(), weight.data_ptr<float>(), out.data_ptr<float>(),
                    grid_of(x));
    return out;
  }

  // dx = grad filtered by the kernel turned half a turn; dweight[c] = Σ grad · shifted x, each
  // row's sums in float, the rows' in double and in row order (whatever the threads).
  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1];
    const at::Tensor grad = grad_out[0].contiguous(x.suggest_memory_format());
    if (train_layout(x) != TrainLayout::rows) {
      at::Tensor dx = at::empty_like(x), dweight = at::empty_like(weight);
      filter_planes_backward(x.data_ptr<float>(), weight.data_ptr<float>(), grad.data_ptr<float>(),
                             dx.data_ptr<float>(), dweight.data_ptr<float>(), grid_of(x));
      return {dx, dweight};
    }
    const Image im = image_of(x);
    at::Tensor dx = at::empty_like(x, at::MemoryFormat::ChannelsLast);
    const float *in = x.data_ptr<float>(), *g = grad.data_ptr<float>();
    filter(g, taps_of(weight, true), dx.data_ptr<float>(), im);
    const int64_t stride = padded(im.channels);
    std::vector<float> row_sums(im.rows() * 9 * stride);
    at::parallel_for(0, im.rows(), 1, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row)
        row_weight_gradient(in, g, im, row, row_sums.data() + row * 9 * stride);
    });
    std::vector<double> sums(9 * stride, 0.0);
    for (int64_t row = 0; row < im.rows(); ++row)
      for (int64_t k = 0; k < 9 * stride; ++k) sums[k] += row_sums[row * 9 * stride + k];
    at::Tensor dweight = at::empty_like(weight);
    float* dw = dweight.data_ptr<float>();
    for (int64_t c = 0; c < im.channels; ++c)
      for (int t = 0; t < 9; ++t) dw[9 * c + t] = float(sums[t * stride + c]);
    return {dx, dweight};
  }
};

}  // namespace

bool depthwise_conv3x3_applies(const at::Tensor& x, const at::Tensor& weight, int64_t stride,
                               int64_t padding, int64_t groups) {
  return train_layout(x) != TrainLayout::none && stride == 1 && padding == 1 &&
         x.device().is_cpu() && x.scalar_type() == at::kFloat && groups == x.size(1) &&
         weight.scalar_type() == at::kFloat && weight.is_contiguous() &&
         weight.sizes() == at::IntArrayRef{x.size(1), 1, 3, 3};
}

at::Tensor depthwise_conv3x3(const at::Tensor& x, const at::Tensor& weight) {
  return DepthwiseConvFunction::apply(x, weight);
}

}  // namespace sd::kernels
