#pragma once
#include <c10/core/Device.h>

#include <string>

#include "util/words.h"

namespace sd::train {

// Mixed precision of the forward pass: fp16 comes with loss scaling (loss_scale.h).
enum class Amp { off, bf16, fp16 };

}  // namespace sd::train

namespace sd {
template <>
struct WordsOf<train::Amp> {
  static constexpr std::pair<train::Amp, const char*> list[] = {
      {train::Amp::off, "off"}, {train::Amp::bf16, "bf16"}, {train::Amp::fp16, "fp16"}};
};
}  // namespace sd

namespace sd::train {

// Mixed precision for the forward pass on CUDA while it lives. sd::Error when asked for on
// another device.
class AutocastScope {
 public:
  AutocastScope(Amp amp, c10::Device device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
};

// sd::Error unless `amp` is off or the device is CUDA.
void check_amp(Amp amp, c10::Device device);

}  // namespace sd::train
