#include "models/batch_norm.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "models/avx512_math.h"
#include "models/common.h"

namespace sd::models {
namespace {

using namespace avx512;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// x (N x C x H x W, contiguous): channel c is N planes of H x W floats.
struct Planes {
  int64_t batch, channels, size;
  int64_t count() const { return batch * size; }  // values per channel
  int64_t offset(int64_t n, int64_t c) const { return (n * channels + c) * size; }
};

// Channel c's mean (in float, as ATen keeps it) and sum of squared deviations from it (double).
SD_AVX512 std::pair<float, double> channel_moments(const float* x, const Planes& p, int64_t c) {
  __m512d sum[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
  for (int64_t n = 0; n < p.batch; ++n) {
    const float* plane = x + p.offset(n, c);
    for (int64_t j = 0; j < p.size; j += kLanes)
      add_as_doubles(_mm512_maskz_loadu_ps(block_mask(j, p.size), plane + j), sum);
  }
  const float mean = float(sum_doubles(sum) / double(p.count()));
  const __m512 vmean = _mm512_set1_ps(mean);
  __m512d squares[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
  for (int64_t n = 0; n < p.batch; ++n) {
    const float* plane = x + p.offset(n, c);
    for (int64_t j = 0; j < p.size; j += kLanes) {
      const __mmask16 m = block_mask(j, p.size);
      const __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, plane + j), vmean);
      add_as_doubles(_mm512_mul_ps(d, d), squares);
    }
  }
  return {mean, sum_doubles(squares)};
}

// out = x · alpha + beta over channel c, then GELU when `gelu`.
SD_AVX512 void normalise_channel(const float* x, float* out, const Planes& p, int64_t c,
                                 float alpha, float beta, bool gelu) {
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int64_t n = 0; n < p.batch; ++n) {
    const int64_t at = p.offset(n, c);
    for (int64_t j = 0; j < p.size; j += kLanes) {
      const __mmask16 m = block_mask(j, p.size);
      __m512 y = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + at + j), va), vb);
      if (gelu) y = gelu16(y);
      _mm512_mask_storeu_ps(out + at + j, m, y);
    }
  }
}

// The per-channel sums backward needs, over channel c: of dy and of (x - mean) · dy, where
// dy is the normalised tensor's gradient: `grad` itself, or with `gelu` grad · GELU'(x · alpha
// + beta), which is written to `dy` for the second pass. As ATen's kernel: each plane summed in
// float, the planes' sums in double. (Entries whose exact gradient is 0, such as a bias before
// a BatchNorm, are this rounding; summing in double throughout halves it, away from the
// reference's.)
SD_AVX512 std::pair<double, double> gradient_sums(const float* x, const float* grad, float* dy,
                                                  const Planes& p, int64_t c, float mean,
                                                  float alpha, float beta, bool gelu) {
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta), vmean = _mm512_set1_ps(mean);
  double sum = 0, dot = 0;
  for (int64_t n = 0; n < p.batch; ++n) {
    const int64_t at = p.offset(n, c);
    __m512 plane_sum = _mm512_setzero_ps(), plane_dot = _mm512_setzero_ps();
    for (int64_t j = 0; j < p.size; j += kLanes) {
      const __mmask16 m = block_mask(j, p.size);
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + at + j);
      __m512 g = _mm512_maskz_loadu_ps(m, grad + at + j);
      if (gelu) {
        g = _mm512_maskz_mul_ps(m, g, gelu_derivative16(_mm512_add_ps(_mm512_mul_ps(xv, va), vb)));
        _mm512_mask_storeu_ps(dy + at + j, m, g);
      }
      plane_sum = _mm512_add_ps(plane_sum, g);
      plane_dot = _mm512_add_ps(plane_dot, _mm512_mul_ps(_mm512_sub_ps(xv, vmean), g));
    }
    sum += _mm512_reduce_add_ps(plane_sum);
    dot += _mm512_reduce_add_ps(plane_dot);
  }
  return {sum, dot};
}

// dx = (dy - dy_mean - (x - mean) · k) · invstd · weight over channel c (dx may be dy), in
// ATen's order of operations.
SD_AVX512 void input_gradient(const float* x, const float* dy, float* dx, const Planes& p,
                              int64_t c, float mean, float dy_mean, float k, float invstd,
                              float weight) {
  const __m512 vmean = _mm512_set1_ps(mean), vdy_mean = _mm512_set1_ps(dy_mean);
  const __m512 vk = _mm512_set1_ps(k), vinvstd = _mm512_set1_ps(invstd);
  const __m512 vweight = _mm512_set1_ps(weight);
  for (int64_t n = 0; n < p.batch; ++n) {
    const int64_t at = p.offset(n, c);
    for (int64_t j = 0; j < p.size; j += kLanes) {
      const __mmask16 m = block_mask(j, p.size);
      const __m512 shift =
          _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + at + j), vmean), vk);
      __m512 d =
          _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, dy + at + j), vdy_mean), shift);
      d = _mm512_mul_ps(_mm512_mul_ps(d, vinvstd), vweight);
      _mm512_mask_storeu_ps(dx + at + j, m, d);
    }
  }
}

Planes planes_of(const at::Tensor& x) { return {x.size(0), x.size(1), x.size(2) * x.size(3)}; }

// What forward needs besides the differentiable inputs.
struct Running {
  at::Tensor mean, var;  // updated in place
  double momentum, eps;
  bool gelu;
};

struct BatchNormFunction : torch::autograd::Function<BatchNormFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, const Running& running) {
    const Planes p = planes_of(x);
    at::Tensor out = at::empty_like(x);
    at::Tensor mean = at::empty({p.channels}), invstd = at::empty({p.channels});
    const double n = double(p.count()), momentum = running.momentum;
    const float *in = x.data_ptr<float>(), *w = weight.data_ptr<float>(),
                *b = bias.data_ptr<float>();
    float *mean_of = mean.data_ptr<float>(), *invstd_of = invstd.data_ptr<float>();
    float *rm = running.mean.data_ptr<float>(), *rv = running.var.data_ptr<float>();
    at::parallel_for(0, p.channels, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        const auto [mu, sum_of_squares] = channel_moments(in, p, c);
        const double squares = float(sum_of_squares);  // ATen keeps it in float
        const float inv = float(1.0 / std::sqrt(squares / n + running.eps));
        mean_of[c] = mu;
        invstd_of[c] = inv;
        rm[c] = float(momentum * mu + (1 - momentum) * rm[c]);
        rv[c] = float(momentum * squares / (n - 1) + (1 - momentum) * rv[c]);
        const float alpha = inv * w[c];
        normalise_channel(in, out.data_ptr<float>(), p, c, alpha, b[c] - mu * alpha, running.gelu);
      }
    });
    ctx->save_for_backward({x, weight, bias, mean, invstd});
    ctx->saved_data["gelu"] = running.gelu;
    return out;
  }

  // With x̂ = (x - mean) · invstd: dweight = Σ dy x̂, dbias = Σ dy, and
  // dx = (dy - Σdy / n - x̂ Σ(dy x̂) / n) · invstd · weight.
  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &bias = saved[2];
    const float* mean = saved[3].data_ptr<float>();
    const float* invstd = saved[4].data_ptr<float>();
    const bool gelu = ctx->saved_data["gelu"].toBool();
    const at::Tensor grad = grad_out[0].contiguous();
    const Planes p = planes_of(x);
    at::Tensor dx = at::empty_like(x);
    at::Tensor dweight = at::empty_like(weight), dbias = at::empty_like(bias);
    const double n = double(p.count());
    const float *in = x.data_ptr<float>(), *w = weight.data_ptr<float>(),
                *b = bias.data_ptr<float>();
    const float* g = grad.data_ptr<float>();
    float *dx_of = dx.data_ptr<float>(), *dw = dweight.data_ptr<float>(),
          *db = dbias.data_ptr<float>();
    at::parallel_for(0, p.channels, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        const float alpha = invstd[c] * w[c], beta = b[c] - mean[c] * alpha;
        const auto [sum, dot] = gradient_sums(in, g, dx_of, p, c, mean[c], alpha, beta, gelu);
        dw[c] = float(dot * invstd[c]);
        db[c] = float(sum);
        const float k = float(dot) * invstd[c] * invstd[c] / float(p.count());
        input_gradient(in, gelu ? dx_of : g, dx_of, p, c, mean[c], float(sum / n), k, invstd[c],
                       w[c]);
      }
    });
    return {dx, dweight, dbias, at::Tensor()};
  }
};

}  // namespace

bool fused_batch_norm_applies(const torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x) {
  return cpu_has_avx512() && bn.options.track_running_stats() && bn.options.affine() &&
         x.dim() == 4 && x.device().is_cpu() && x.scalar_type() == at::kFloat &&
         x.is_contiguous() && bn.weight.scalar_type() == at::kFloat &&
         bn.running_mean.is_contiguous() && bn.running_var.is_contiguous() &&
         x.size(0) * x.size(2) * x.size(3) > 1;
}

at::Tensor batch_norm_train(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x, bool gelu) {
  if (!fused_batch_norm_applies(bn, x)) return gelu ? models::gelu(bn.forward(x)) : bn.forward(x);
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

}  // namespace sd::models
