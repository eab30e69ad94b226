#include "train/loss_scale.h"

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

}  // namespace sd::train
