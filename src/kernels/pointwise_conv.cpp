#include "kernels/pointwise_conv.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

namespace sd::kernels {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// A contiguous N x C x H x W tensor as N x C x (H·W), a view.
at::Tensor as_matrices(const at::Tensor& t) { return t.view({t.size(0), t.size(1), -1}); }

struct PointwiseConvFunction : torch::autograd::Function<PointwiseConvFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight) {
    ctx->save_for_backward({x, weight});
    const at::Tensor w = weight.view({weight.size(0), weight.size(1)});
    at::Tensor out = at::empty({x.size(0), w.size(0), x.size(2), x.size(3)}, x.options());
    const at::Tensor in = as_matrices(x), y = as_matrices(out);
    for (int64_t n = 0; n < x.size(0); ++n) {
      at::Tensor y_n = y[n];
      at::mm_out(y_n, w, in[n]);
    }
    return out;
  }

  // dx[n] = wᵀ · grad[n]; dweight = Σ_n grad[n] · x[n]ᵀ, the samples added in order.
  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1];
    const at::Tensor w = weight.view({weight.size(0), weight.size(1)});
    const at::Tensor g = as_matrices(grad_out[0].contiguous()), in = as_matrices(x);
    at::Tensor dx, dweight;
    if (ctx->needs_input_grad(0)) {
      dx = at::empty_like(x);
      const at::Tensor d = as_matrices(dx);
      for (int64_t n = 0; n < x.size(0); ++n) {
        at::Tensor d_n = d[n];
        at::mm_out(d_n, w.t(), g[n]);
      }
    }
    if (ctx->needs_input_grad(1)) {
      at::Tensor dw = at::zeros_like(w);
      for (int64_t n = 0; n < x.size(0); ++n) dw.addmm_(g[n], in[n].t());
      dweight = dw.view_as(weight);
    }
    return {dx, dweight};
  }
};

}  // namespace

bool pointwise_conv_applies(const at::Tensor& x, const at::Tensor& weight, int64_t stride,
                            int64_t padding, int64_t groups) {
  return x.dim() == 4 && x.device().is_cpu() && x.scalar_type() == at::kFloat &&
         x.is_contiguous() && stride == 1 && padding == 0 && groups == 1 &&
         weight.scalar_type() == at::kFloat && weight.is_contiguous() && weight.dim() == 4 &&
         weight.size(1) == x.size(1) && weight.size(2) == 1 && weight.size(3) == 1 && x.size(0) > 0;
}

at::Tensor pointwise_conv(const at::Tensor& x, const at::Tensor& weight) {
  return PointwiseConvFunction::apply(x, weight);
}

}  // namespace sd::kernels
