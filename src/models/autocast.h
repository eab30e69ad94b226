#pragma once
#include <c10/core/Device.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

#include <string>

#include "util/words.h"

namespace sd::models {

// Mixed precision of the forward pass. bf16 runs on CPUs and CUDA; fp16 is CUDA only and comes
// with loss scaling when training (train/loss_scale.h). Weights, losses, optimiser state and
// the embeddings a model returns stay fp32.
enum class Amp { off, bf16, fp16 };

}  // namespace sd::models

namespace sd {
template <>
struct WordsOf<models::Amp> {
  static constexpr std::pair<models::Amp, const char*> list[] = {
      {models::Amp::off, "off"}, {models::Amp::bf16, "bf16"}, {models::Amp::fp16, "fp16"}};
};
}  // namespace sd

namespace sd::models {

// Mixed precision for the forward passes run on this thread while it lives (LibTorch's
// autocast: matrix products and convolutions in the lower precision, reductions in fp32).
// sd::Error when `amp` cannot run on `device`.
class AutocastScope {
 public:
  AutocastScope(Amp amp, c10::Device device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType type_ = c10::DeviceType::CPU;
  bool active_ = false;
};

// fp32 for the CPU operations run on this thread while it lives, also inside an AutocastScope:
// for work that keeps its bf16 operands' values but computes in fp32.
class Fp32Scope {
 public:
  Fp32Scope() = default;
  Fp32Scope(const Fp32Scope&) = delete;
  Fp32Scope& operator=(const Fp32Scope&) = delete;

 private:
  c10::impl::ExcludeDispatchKeyGuard no_autocast_{c10::DispatchKey::AutocastCPU};
};

// The mixed precision active on this thread for `device`'s type (what an AutocastScope set).
Amp current_amp(c10::DeviceType type);

// sd::Error unless `amp` can run on `device`: off anywhere, bf16 on CPUs and CUDA, fp16 on CUDA.
void check_amp(Amp amp, c10::Device device);

// Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 runs, slowly.
bool cpu_has_native_bf16();

}  // namespace sd::models
