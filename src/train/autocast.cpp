#include "train/autocast.h"

#include <ATen/autocast_mode.h>

#include "util/error.h"

namespace sd::train {

void check_amp(Amp amp, c10::Device device) {
  if (amp != Amp::off && !device.is_cuda())
    throw Error("amp '" + std::string(word(amp)) + "' needs a CUDA device (device is " +
                device.str() + ")");
}

AutocastScope::AutocastScope(Amp amp, c10::Device device) {
  check_amp(amp, device);
  if (amp == Amp::off) return;
  at::autocast::set_autocast_gpu_dtype(amp == Amp::bf16 ? at::kBFloat16 : at::kHalf);
  at::autocast::set_enabled(true);
  active_ = true;
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  at::autocast::set_enabled(false);
  at::autocast::clear_cache();
}

}  // namespace sd::train
