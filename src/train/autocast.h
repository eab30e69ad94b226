#pragma once
#include <c10/core/Device.h>

#include <string>

namespace sd::train {

// Mixed precision for the forward pass on CUDA while it lives: `amp` is "off", "bf16" or
// "fp16" (with loss scaling, see loss_scale.h). sd::Error when asked for on another device.
class AutocastScope {
 public:
  AutocastScope(const std::string& amp, c10::Device device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
};

// sd::Error unless `amp` is "off" or the device is CUDA.
void check_amp(const std::string& amp, c10::Device device);

}  // namespace sd::train
