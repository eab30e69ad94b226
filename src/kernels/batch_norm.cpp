#include "kernels/batch_norm.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "kernels/avx512_math.h"
#include "kernels/batch_norm_planes.h"
#include "kernels/gelu.h"
#include "kernels/train_layout.h"

namespace sd::kernels {
namespace {

using namespace avx512;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// x channels-last: `count()` rows (the pixels of every sample, sample after sample) of
// `channels` values. Channel block c0 is the 16 lanes of channels c0 .. c0 + 15 of a row.
struct Rows {
  int64_t batch, pixels, channels;                  // pixels: H x W, per sample
  int64_t count() const { return batch * pixels; }  // values per channel
  const float* at(const float* x, int64_t row, int64_t c0) const { return x + row * channels + c0; }
  float* at(float* x, int64_t row, int64_t c0) const { return x + row * channels + c0; }
};

// The rows are summed in chunks (about 256 KiB, within one sample), in parallel, each chunk's
// sums kept apart and added in chunk order, so that the result does not depend on the threads.
struct Chunks {
  int64_t rows, per_sample;
  explicit Chunks(const Rows& p)
      : rows(std::min(p.pixels, std::max<int64_t>(16, (1 << 16) / p.channels))),
        per_sample((p.pixels + rows - 1) / rows) {}
  int64_t count(const Rows& p) const { return p.batch * per_sample; }
  int64_t first_row(const Rows& p, int64_t chunk) const {
    return chunk / per_sample * p.pixels + chunk % per_sample * rows;
  }
  int64_t end_row(const Rows& p, int64_t chunk) const {
    return chunk / per_sample * p.pixels + std::min(p.pixels, (chunk % per_sample + 1) * rows);
  }
};

// Runs `chunk(index, first row, end row)` for every chunk of rows, in parallel.
void for_each_chunk(const Rows& p, const Chunks& chunks,
                    const std::function<void(int64_t, int64_t, int64_t)>& chunk) {
  at::parallel_for(0, chunks.count(p), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) chunk(i, chunks.first_row(p, i), chunks.end_row(p, i));
  });
}

// acc[0 .. 15] += the 16 floats of v, in double.
SD_AVX512 void add_to_doubles(__m512 v, double* acc) {
  _mm512_storeu_pd(acc,
                   _mm512_add_pd(_mm512_loadu_pd(acc), _mm512_cvtps_pd(_mm512_castps512_ps256(v))));
  _mm512_storeu_pd(acc + 8, _mm512_add_pd(_mm512_loadu_pd(acc + 8),
                                          _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1))));
}

// Per channel over rows [first, end): the sum, in double, and the sum of squared deviations
// from the rows' own mean (the deviation and its square in float, as ATen, summed in double).
// Row after row, as memory holds them (the hardware prefetches that order, not a column's);
// the second pass finds the rows in the core's cache.
SD_AVX512 void chunk_moments(const float* x, const Rows& p, int64_t first, int64_t end,
                             double* sum_of, double* squares_of) {
  const int64_t channels = p.channels;
  // Padded to whole blocks: the lanes past the last channel add zeros.
  std::vector<double> sum(padded(channels)), squares(padded(channels)),
      deviations(padded(channels));
  std::vector<float> mean(padded(channels));
  for (int64_t r = first; r < end; ++r)
    for (int64_t c0 = 0; c0 < channels; c0 += kLanes)
      add_to_doubles(_mm512_maskz_loadu_ps(block_mask(c0, channels), p.at(x, r, c0)), &sum[c0]);
  const double n = double(end - first);
  for (int64_t c = 0; c < channels; ++c) mean[c] = float(sum[c] / n);
  for (int64_t r = first; r < end; ++r)
    for (int64_t c0 = 0; c0 < channels; c0 += kLanes) {
      const __mmask16 m = block_mask(c0, channels);
      const __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, p.at(x, r, c0)),
                                           _mm512_loadu_ps(&mean[c0]));
      add_to_doubles(_mm512_mul_ps(d, d), &squares[c0]);
      add_to_doubles(d, &deviations[c0]);
    }
  // Σ (x - float mean)² less n (mean - float mean)²: about the exact mean.
  for (int64_t c = 0; c < channels; ++c) {
    sum_of[c] = sum[c];
    squares_of[c] = squares[c] - deviations[c] * deviations[c] / n;
  }
}

// Per channel: the sum over the chunks' sums (chunk after chunk, `channels` apart).
std::vector<double> add_chunks(const std::vector<double>& partial, int64_t chunks,
                               int64_t channels) {
  std::vector<double> total(channels, 0.0);
  for (int64_t i = 0; i < chunks; ++i)
    for (int64_t c = 0; c < channels; ++c) total[c] += partial[i * channels + c];
  return total;
}

// Per channel, the mean (in float, as ATen keeps it) and the sum of squared deviations from
// it (in double): the chunks' sums and squares joined as Chan, Golub and LeVeque's parallel
// variance, M2 = Σ M2_i + n_i (mean_i - mean)².
std::vector<double> moments(const float* x, const Rows& p, float* mean) {
  const Chunks chunks(p);
  const int64_t count = chunks.count(p), channels = p.channels;
  std::vector<double> sums(count * channels), squares(count * channels);
  for_each_chunk(p, chunks, [&](int64_t i, int64_t first, int64_t end) {
    chunk_moments(x, p, first, end, sums.data() + i * channels, squares.data() + i * channels);
  });
  const std::vector<double> total = add_chunks(sums, count, channels);
  std::vector<double> sum_of_squares(channels, 0.0);
  for (int64_t c = 0; c < channels; ++c) {
    const double exact_mean = total[c] / double(p.count());
    mean[c] = float(exact_mean);
    for (int64_t i = 0; i < count; ++i) {
      const double rows = double(chunks.end_row(p, i) - chunks.first_row(p, i));
      const double shift = sums[i * channels + c] / rows - exact_mean;
      sum_of_squares[c] += squares[i * channels + c] + rows * shift * shift;
    }
  }
  return sum_of_squares;
}

// out = x · alpha + beta per channel over rows [begin, end), then GELU when `gelu`.
SD_AVX512 void normalise_rows(const float* x, float* out, const Rows& p, int64_t begin, int64_t end,
                              const float* alpha, const float* beta, bool gelu) {
  for (int64_t r = begin; r < end; ++r)
    for (int64_t c0 = 0; c0 < p.channels; c0 += kLanes) {
      const __mmask16 m = block_mask(c0, p.channels);
      __m512 y = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p.at(x, r, c0)),
                               _mm512_maskz_loadu_ps(m, alpha + c0));
      y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, beta + c0));
      if (gelu) y = gelu16(y);
      _mm512_mask_storeu_ps(p.at(out, r, c0), m, y);
    }
}

// Per channel over rows [first, end), the sums backward needs, in float: of dy and of
// (x - mean) · dy, where dy is the normalised tensor's gradient: `grad` itself, or with `gelu`
// grad · GELU'(x · alpha + beta), which is written to `dy` for the second pass.
SD_AVX512 void chunk_gradient_sums(const float* x, const float* grad, float* dy, const Rows& p,
                                   int64_t first, int64_t end, const GradientSums& v, float* sum,
                                   float* dot) {
  constexpr int64_t kRowsAtATime = 16;
  const int64_t channels = p.channels;
  std::vector<float> some_sum(padded(channels)), some_dot(padded(channels));
  std::fill(sum, sum + channels, 0.0f);
  std::fill(dot, dot + channels, 0.0f);
  for (int64_t at = first; at < end; at += kRowsAtATime) {
    std::fill(some_sum.begin(), some_sum.end(), 0.0f);
    std::fill(some_dot.begin(), some_dot.end(), 0.0f);
    for (int64_t r = at; r < std::min(end, at + kRowsAtATime); ++r)
      for (int64_t c0 = 0; c0 < channels; c0 += kLanes) {
        const __mmask16 m = block_mask(c0, channels);
        const __m512 xv = _mm512_maskz_loadu_ps(m, p.at(x, r, c0));
        __m512 g = _mm512_maskz_loadu_ps(m, p.at(grad, r, c0));
        if (v.gelu) {
          const __m512 z = _mm512_add_ps(_mm512_mul_ps(xv, _mm512_maskz_loadu_ps(m, v.alpha + c0)),
                                         _mm512_maskz_loadu_ps(m, v.beta + c0));
          g = _mm512_maskz_mul_ps(m, g, gelu_derivative16(z));
          _mm512_mask_storeu_ps(p.at(dy, r, c0), m, g);
        }
        const __m512 d = _mm512_sub_ps(xv, _mm512_maskz_loadu_ps(m, v.mean + c0));
        _mm512_storeu_ps(&some_sum[c0], _mm512_add_ps(_mm512_loadu_ps(&some_sum[c0]), g));
        _mm512_storeu_ps(&some_dot[c0],
                         _mm512_add_ps(_mm512_loadu_ps(&some_dot[c0]), _mm512_mul_ps(d, g)));
      }
    for (int64_t c = 0; c < channels; ++c) {
      sum[c] += some_sum[c];
      dot[c] += some_dot[c];
    }
  }
}

// Per channel, Σ dy and Σ (x - mean) · dy as ATen's kernel sums them: each sample's values in
// float, the samples' sums in double. (Entries whose exact gradient is 0, such as a bias before
// a BatchNorm, are this rounding; summing in double throughout halves it, away from the
// reference's.)
std::pair<std::vector<double>, std::vector<double>> gradient_sums(const float* x, const float* grad,
                                                                  float* dy, const Rows& p,
                                                                  const GradientSums& v) {
  const Chunks chunks(p);
  const int64_t channels = p.channels;
  std::vector<float> sums(chunks.count(p) * channels), dots(chunks.count(p) * channels);
  for_each_chunk(p, chunks, [&](int64_t i, int64_t first, int64_t end) {
    chunk_gradient_sums(x, grad, dy, p, first, end, v, sums.data() + i * channels,
                        dots.data() + i * channels);
  });
  std::vector<double> sum(channels, 0.0), dot(channels, 0.0);
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t c = 0; c < channels; ++c) {
      float sample_sum = 0, sample_dot = 0;
      for (int64_t i = n * chunks.per_sample; i < (n + 1) * chunks.per_sample; ++i) {
        sample_sum += sums[i * channels + c];
        sample_dot += dots[i * channels + c];
      }
      sum[c] += sample_sum;
      dot[c] += sample_dot;
    }
  return {sum, dot};
}

// dx = (dy - dy_mean - (x - mean) · k) · invstd · weight per channel over rows [begin, end)
// (dx may be dy), in ATen's order of operations.
SD_AVX512 void input_gradient_rows(const float* x, const float* dy, float* dx, const Rows& p,
                                   int64_t begin, int64_t end, const InputGradient& v) {
  for (int64_t r = begin; r < end; ++r)
    for (int64_t c0 = 0; c0 < p.channels; c0 += kLanes) {
      const __mmask16 m = block_mask(c0, p.channels);
      const __m512 shift = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p.at(x, r, c0)),
                                                       _mm512_maskz_loadu_ps(m, v.mean + c0)),
                                         _mm512_maskz_loadu_ps(m, v.k + c0));
      __m512 d = _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p.at(dy, r, c0)),
                                             _mm512_maskz_loadu_ps(m, v.dy_mean + c0)),
                               shift);
      d = _mm512_mul_ps(_mm512_mul_ps(d, _mm512_maskz_loadu_ps(m, v.invstd + c0)),
                        _mm512_maskz_loadu_ps(m, v.weight + c0));
      _mm512_mask_storeu_ps(p.at(dx, r, c0), m, d);
    }
}

Rows rows_of(const at::Tensor& x) { return {x.size(0), x.size(2) * x.size(3), x.size(1)}; }
Planes planes_of(const at::Tensor& x) { return {x.size(0), x.size(1), x.size(2) * x.size(3)}; }

// Runs `rows(begin, end)` over all rows, in parallel.
void for_row_ranges(const Rows& p, const std::function<void(int64_t, int64_t)>& rows) {
  at::parallel_for(0, p.count(), std::max<int64_t>(1, (1 << 16) / p.channels), rows);
}

// What forward needs besides the differentiable inputs.
struct Running {
  at::Tensor mean, var;  // updated in place
  double momentum, eps;
  bool gelu;
};

struct BatchNormFunction : torch::autograd::Function<BatchNormFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, const Running& running) {
    const bool rows = train_layout(x) == TrainLayout::rows;
    const Rows p = rows_of(x);
    const Planes planes = planes_of(x);
    const int64_t channels = p.channels;
    at::Tensor out = at::empty_like(x);
    at::Tensor mean = at::empty({channels}), invstd = at::empty({channels});
    at::Tensor alpha = at::empty({channels}), beta = at::empty({channels});
    const float* in = x.data_ptr<float>();
    float* mean_of = mean.data_ptr<float>();
    const std::vector<double> squares =
        rows ? moments(in, p, mean_of) : plane_moments(in, planes, mean_of);
    const double n = double(p.count()), momentum = running.momentum;
    const float *w = weight.data_ptr<float>(), *b = bias.data_ptr<float>();
    float *rm = running.mean.data_ptr<float>(), *rv = running.var.data_ptr<float>();
    float *invstd_of = invstd.data_ptr<float>(), *a = alpha.data_ptr<float>(),
          *shift = beta.data_ptr<float>();
    for (int64_t c = 0; c < channels; ++c) {
      const double sum_of_squares = float(squares[c]);  // ATen keeps it in float
      invstd_of[c] = float(1.0 / std::sqrt(sum_of_squares / n + running.eps));
      rm[c] = float(momentum * mean_of[c] + (1 - momentum) * rm[c]);
      rv[c] = float(momentum * sum_of_squares / (n - 1) + (1 - momentum) * rv[c]);
      a[c] = invstd_of[c] * w[c];
      shift[c] = b[c] - mean_of[c] * a[c];
    }
    float* y = out.data_ptr<float>();
    if (rows)
      for_row_ranges(p, [&](int64_t begin, int64_t end) {
        normalise_rows(in, y, p, begin, end, a, shift, running.gelu);
      });
    else
      normalise_planes(in, y, planes, a, shift, running.gelu);
    ctx->save_for_backward({x, weight, mean, invstd, alpha, beta});
    ctx->saved_data["gelu"] = running.gelu;
    return out;
  }

  // With x̂ = (x - mean) · invstd: dweight = Σ dy x̂, dbias = Σ dy, and
  // dx = (dy - Σdy / n - x̂ Σ(dy x̂) / n) · invstd · weight.
  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1];
    const float *mean = saved[2].data_ptr<float>(), *invstd = saved[3].data_ptr<float>();
    const float *alpha = saved[4].data_ptr<float>(), *beta = saved[5].data_ptr<float>();
    const bool gelu = ctx->saved_data["gelu"].toBool();
    const bool rows = train_layout(x) == TrainLayout::rows;
    const at::Tensor grad = grad_out[0].contiguous(x.suggest_memory_format());
    const Rows p = rows_of(x);
    const Planes planes = planes_of(x);
    const int64_t channels = p.channels;
    at::Tensor dx = at::empty_like(x);
    at::Tensor dweight = at::empty_like(weight), dbias = at::empty_like(weight);
    const float *in = x.data_ptr<float>(), *g = grad.data_ptr<float>();
    float* dx_of = dx.data_ptr<float>();
    const GradientSums sums_of{mean, alpha, beta, gelu};
    const auto [sum, dot] = rows ? gradient_sums(in, g, dx_of, p, sums_of)
                                 : plane_gradient_sums(in, g, dx_of, planes, sums_of);
    const float* w = weight.data_ptr<float>();
    float *dw = dweight.data_ptr<float>(), *db = dbias.data_ptr<float>();
    std::vector<float> dy_mean(channels), k(channels);
    for (int64_t c = 0; c < channels; ++c) {
      dw[c] = float(dot[c] * invstd[c]);
      db[c] = float(sum[c]);
      dy_mean[c] = float(sum[c] / double(p.count()));
      k[c] = float(dot[c]) * invstd[c] * invstd[c] / float(p.count());
    }
    const InputGradient v{mean, dy_mean.data(), k.data(), invstd, w};
    if (rows)
      for_row_ranges(p, [&](int64_t begin, int64_t end) {
        input_gradient_rows(in, gelu ? dx_of : g, dx_of, p, begin, end, v);
      });
    else
      plane_input_gradient(in, gelu ? dx_of : g, dx_of, planes, v);
    return {dx, dweight, dbias, at::Tensor()};
  }
};

}  // namespace

bool fused_batch_norm_applies(const torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x) {
  return train_layout(x) != TrainLayout::none && bn.options.track_running_stats() &&
         bn.options.affine() && x.device().is_cpu() && x.scalar_type() == at::kFloat &&
         bn.weight.scalar_type() == at::kFloat && bn.running_mean.is_contiguous() &&
         bn.running_var.is_contiguous() && x.size(0) * x.size(2) * x.size(3) > 1;
}

at::Tensor batch_norm_train(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x, bool gelu) {
  if (!fused_batch_norm_applies(bn, x))
    return gelu ? kernels::gelu_over(bn.forward(x)) : bn.forward(x);
  // torch::nn::BatchNorm's own bookkeeping: momentum, or with none the cumulative average.
  {
    at::NoGradGuard no_grad;
    bn.num_batches_tracked += 1;
  }
  const double momentum =
      bn.options.momentum() ? *bn.options.momentum() : 1.0 / bn.num_batches_tracked.item<double>();
  return BatchNormFunction::apply(
      x, bn.weight, bn.bias,
      Running{bn.running_mean, bn.running_var, momentum, bn.options.eps(), gelu});
}

std::pair<at::Tensor, at::Tensor> fold_batch_norm(const at::Tensor& weight,
                                                  const torch::nn::BatchNorm2dImpl& bn) {
  const at::Tensor scale = bn.weight / at::sqrt(bn.running_var + bn.options.eps());
  return {weight * scale.view({-1, 1, 1, 1}), bn.bias - bn.running_mean * scale};
}

}  // namespace sd::kernels
