#pragma once
#include <c10/core/Device.h>

#include <string>

#include "util/words.h"

namespace sd {

// What a --device option or a config's "device" asks for.
enum class DeviceChoice { automatic, cpu, cuda };
template <>
struct WordsOf<DeviceChoice> {
  static constexpr std::pair<DeviceChoice, const char*> list[] = {
      {DeviceChoice::automatic, "auto"}, {DeviceChoice::cpu, "cpu"}, {DeviceChoice::cuda, "cuda"}};
};

// "auto" is CUDA when available, else the CPU; sd::Error when CUDA is asked for and absent.
c10::Device resolve_device(DeviceChoice choice);

// The CUDA devices this process sees; 0 without CUDA (or a LibTorch built without it).
int cuda_device_count();

// resolve_device of "cpu", "cuda" or "auto"; sd::Error naming the value when it is none of those.
c10::Device parse_device(const std::string& name);

}  // namespace sd
