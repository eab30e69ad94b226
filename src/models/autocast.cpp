#include "models/autocast.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "models/bf16_products.h"
#include "util/cpu.h"
#include "util/error.h"

// LibTorch 2.4 names autocast's switches by device type and deprecates the per-device ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define SD_AUTOCAST_BY_DEVICE_TYPE 1
#endif

namespace sd::models {
namespace {

void set_autocast(c10::DeviceType type, bool enabled, at::ScalarType dtype) {
#ifdef SD_AUTOCAST_BY_DEVICE_TYPE
  at::autocast::set_autocast_dtype(type, dtype);
  at::autocast::set_autocast_enabled(type, enabled);
#else
  if (type == c10::DeviceType::CUDA) {
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(enabled);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(enabled);
  }
#endif
}

}  // namespace

Amp current_amp(c10::DeviceType type) {
#ifdef SD_AUTOCAST_BY_DEVICE_TYPE
  const bool enabled = at::autocast::is_autocast_enabled(type);
  const at::ScalarType dtype = at::autocast::get_autocast_dtype(type);
#else
  const bool cuda = type == c10::DeviceType::CUDA;
  const bool enabled = cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
  const at::ScalarType dtype =
      cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
  if (!enabled) return Amp::off;
  return dtype == at::kHalf ? Amp::fp16 : Amp::bf16;
}

void check_amp(Amp amp, c10::Device device) {
  if (amp == Amp::off || device.is_cuda()) return;
  if (amp == Amp::fp16)
    throw Error("amp 'fp16' needs a CUDA device (device is " + device.str() +
                "); on CPUs use bf16");
  if (!device.is_cpu())
    throw Error("amp '" + std::string(word(amp)) + "' runs on CPUs and CUDA, not on " +
                device.str());
}

AutocastScope::AutocastScope(Amp amp, c10::Device device) : type_(device.type()) {
  check_amp(amp, device);
  if (amp == Amp::off) return;
  if (amp == Amp::bf16 && type_ == c10::DeviceType::CPU) prepare_bf16_products();
  set_autocast(type_, true, amp == Amp::bf16 ? at::kBFloat16 : at::kHalf);
  active_ = true;
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  set_autocast(type_, false, type_ == c10::DeviceType::CUDA ? at::kHalf : at::kBFloat16);
  at::autocast::clear_cache();
}

bool cpu_has_native_bf16() { return cpu_has("avx512_bf16") || cpu_has("amx_bf16"); }

}  // namespace sd::models
