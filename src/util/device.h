#pragma once
#include <c10/core/Device.h>

#include <string>

namespace sd {

// "cpu", "cuda" or "auto" (CUDA when available, else the CPU); sd::Error naming the value
// when it is none of those or when CUDA is asked for and absent.
c10::Device parse_device(const std::string& name);

}  // namespace sd
