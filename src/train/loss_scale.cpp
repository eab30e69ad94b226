#include "train/loss_scale.h"

#include <torch/nn/utils/clip_grad.h>

#include <cmath>

namespace sd::train {

void LossScale::unscale(const std::vector<at::Tensor>& params) const {
  if (!enabled) return;
  for (const auto& p : params)
    if (p.grad().defined()) p.mutable_grad().mul_(1.0 / scale);
}

void LossScale::update(bool finite) {
  if (!enabled) return;
  if (!finite) {
    scale *= 0.5;
    good_steps = 0;
  } else if (++good_steps >= growth_interval) {
    scale *= 2.0;
    good_steps = 0;
  }
}

double LossScale::step(torch::optim::Optimizer& optimizer, const std::vector<at::Tensor>& params,
                       double loss, double max_norm) {
  unscale(params);
  const double norm =
      std::isfinite(loss) ? torch::nn::utils::clip_grad_norm_(params, max_norm) : NAN;
  update(std::isfinite(norm));
  if (std::isfinite(norm)) optimizer.step();
  return norm;
}

}  // namespace sd::train
