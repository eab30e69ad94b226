#include "util/device.h"

#include <ATen/Context.h>

#include "util/error.h"

namespace sd {

c10::Device parse_device(const std::string& name) {
  if (name == "cpu") return c10::kCPU;
  if (name == "auto") return at::hasCUDA() ? c10::kCUDA : c10::kCPU;
  if (name == "cuda") {
    if (!at::hasCUDA()) throw Error("--device cuda: this build or machine has no CUDA device");
    return c10::kCUDA;
  }
  throw Error("unknown device '" + name + "' (expected cpu, cuda or auto)");
}

}  // namespace sd
