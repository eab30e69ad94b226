#include "distributed/sync_batch_norm.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdint>
#include <vector>

namespace sd::distributed {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Every dimension but the channels'.
std::vector<int64_t> reduced_dims(const at::Tensor& x) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}

// A per-channel vector shaped to broadcast over x.
at::Tensor per_channel(const at::Tensor& v, const at::Tensor& x) {
  std::vector<int64_t> shape(size_t(x.dim()), 1);
  shape[1] = x.size(1);
  return v.view(shape);
}

// `t` summed over every rank, computed on the group's device.
at::Tensor sum_over_ranks(Group& group, const at::Tensor& t) {
  at::Tensor shared = t.to(group.device());
  group.all_reduce(shared).wait();
  return shared.to(t.device());
}

class SyncBatchNorm : public torch::autograd::Function<SyncBatchNorm> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, Group* group, at::Tensor running_mean,
                            at::Tensor running_var, double momentum, double eps) {
    const at::Tensor xf = x.to(at::kFloat);
    const double n = double(x.numel() / x.size(1));
    auto [var, mean] = at::var_mean(xf, reduced_dims(x), /*unbiased=*/false);
    // Sums in fp64, so that the global variance (sum of squares less the squared mean) keeps
    // the digits a channel's offset would cancel.
    const at::Tensor m = mean.to(at::kDouble), v = var.to(at::kDouble);
    at::Tensor sums =
        sum_over_ranks(*group, at::cat({m * n, (v + m * m) * n, at::full({1}, n, m.options())}));
    const int64_t c = x.size(1);
    const double total = sums[2 * c].item<double>();
    const at::Tensor global_mean = sums.slice(0, 0, c) / total;
    const at::Tensor global_var =
        (sums.slice(0, c, 2 * c) / total - global_mean * global_mean).clamp_min(0);
    {
      at::NoGradGuard no_grad;
      running_mean.mul_(1 - momentum).add_(global_mean.to(running_mean.dtype()) * momentum);
      running_var.mul_(1 - momentum)
          .add_((global_var * (total / (total - 1))).to(running_var.dtype()) * momentum);
    }
    const at::Tensor mu = global_mean.to(at::kFloat);
    const at::Tensor invstd = (global_var + eps).rsqrt().to(at::kFloat);
    ctx->save_for_backward({x, weight, mu, invstd});
    // For backward: saved_data holds IValues, the group's address as an integer.
    ctx->saved_data["group"] = int64_t(reinterpret_cast<intptr_t>(group));
    ctx->saved_data["total"] = total;
    const at::Tensor scale = invstd * weight.to(at::kFloat);
    const at::Tensor shift = bias.to(at::kFloat) - mu * scale;
    return (xf * per_channel(scale, x) + per_channel(shift, x)).to(x.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    Group& group = *reinterpret_cast<Group*>(intptr_t(ctx->saved_data["group"].toInt()));
    const double total = ctx->saved_data["total"].toDouble();
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &mu = saved[2], &invstd = saved[3];
    const at::Tensor dy = grads[0].to(at::kFloat);
    const at::Tensor xmu = x.to(at::kFloat) - per_channel(mu, x);
    const std::vector<int64_t> dims = reduced_dims(x);
    const at::Tensor sum_dy = dy.sum(dims), sum_dy_xmu = (dy * xmu).sum(dims);
    const int64_t c = x.size(1);
    const at::Tensor both = sum_over_ranks(group, at::cat({sum_dy, sum_dy_xmu}));
    const at::Tensor mean_dy = both.slice(0, 0, c) / total;
    const at::Tensor mean_dy_xmu = both.slice(0, c, 2 * c) / total;
    const at::Tensor grad_x =
        (dy - per_channel(mean_dy, x) - xmu * per_channel(invstd * invstd * mean_dy_xmu, x)) *
        per_channel(invstd * weight.to(at::kFloat), x);
    return {grad_x.to(x.scalar_type()),
            (sum_dy_xmu * invstd).to(weight.scalar_type()),
            sum_dy.to(weight.scalar_type()),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

at::Tensor sync_batch_norm(Group& group, const at::Tensor& x, const at::Tensor& weight,
                           const at::Tensor& bias, at::Tensor running_mean, at::Tensor running_var,
                           double momentum, double eps) {
  return SyncBatchNorm::apply(x, weight, bias, &group, std::move(running_mean),
                              std::move(running_var), momentum, eps);
}

}  // namespace sd::distributed
