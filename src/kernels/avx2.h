#pragma once
// AVX2 + FMA code compiled beside the baseline x86-64 build: functions marked SD_AVX2 run only
// where cpu_has_avx2_fma().

#define SD_AVX2 __attribute__((target("avx2,fma")))

#include <cstdint>

namespace sd::kernels {

constexpr int64_t kLanes = 8;  // floats per AVX2 register

inline bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

}  // namespace sd::kernels
