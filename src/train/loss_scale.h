#pragma once
#include <ATen/core/Tensor.h>

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
};

}  // namespace sd::train
