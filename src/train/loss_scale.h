#pragma once
#include <ATen/core/Tensor.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <vector>

namespace sd::train {

// Dynamic loss scaling for fp16 training, as PyTorch's GradScaler: the loss is multiplied
// by `scale` before backward; an overflow (a non-finite gradient) skips the step and halves
// the scale; `growth_interval` good steps in a row double it. Disabled, it is the identity.
struct LossScale {
  bool enabled = false;
  double scale = 65536.0;
  int64_t good_steps = 0;
  int64_t growth_interval = 2000;

  double factor() const { return enabled ? scale : 1.0; }
  // Divides the gradients by the scale (no-op when disabled).
  void unscale(const std::vector<at::Tensor>& params) const;
  // Records whether the step's gradients were finite and adapts the scale.
  void update(bool finite);
  // The end of an optimiser step, as GradScaler's step() and update(): unscales the gradients
  // of `params`, clips their norm to `max_norm`, steps `optimizer` only when `loss` and the
  // norm are finite, and adapts the scale. Returns the norm before clipping; NaN when the loss
  // is not finite (then nothing is measured).
  double step(torch::optim::Optimizer& optimizer, const std::vector<at::Tensor>& params,
              double loss, double max_norm);
};

}  // namespace sd::train
