#include "util/device.h"

#include <ATen/Context.h>
#include <torch/cuda.h>

#include "util/error.h"

namespace sd {

c10::Device resolve_device(DeviceChoice choice) {
  switch (choice) {
    case DeviceChoice::cpu:
      return c10::kCPU;
    case DeviceChoice::automatic:
      return at::hasCUDA() ? c10::kCUDA : c10::kCPU;
    case DeviceChoice::cuda:
      break;
  }
  if (!at::hasCUDA()) throw Error("--device cuda: this build or machine has no CUDA device");
  return c10::kCUDA;
}

int cuda_device_count() {
  return at::hasCUDA() ? static_cast<int>(torch::cuda::device_count()) : 0;
}

c10::Device parse_device(const std::string& name) {
  return resolve_device(parse_word<DeviceChoice>(name, "device"));
}

}  // namespace sd
