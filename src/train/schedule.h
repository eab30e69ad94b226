#pragma once
#include <cstdint>

namespace sd::train {

// Linear warm-up from lr/warmup_steps to lr, then cosine decay to min_lr at total_steps.
struct LrSchedule {
  double lr = 1e-3;
  double min_lr = 1e-5;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  // Learning rate for optimiser step `step` (0-based).
  double at(int64_t step) const;
};

}  // namespace sd::train
