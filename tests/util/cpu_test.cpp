#include "util/cpu.h"

#include <gtest/gtest.h>

#include <sstream>

namespace sd {
namespace {

CpuInfo parse(const std::string& text) {
  std::istringstream in(text);
  return parse_cpuinfo(in);
}

TEST(Cpu, ModelAndTheFlagsThatMatterOfTheFirstProcessor) {
  const CpuInfo info = parse(
      "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n"
      "flags\t\t: fpu sse2 avx2 fma avx512f avx512bw avx512_bf16 amx_bf16 amx_tile avx512vl\n\n"
      "processor\t: 1\nmodel name\t: Other\nflags\t\t: fpu sve\n");
  EXPECT_EQ(info.model, "Intel(R) Xeon(R) Processor");
  EXPECT_EQ(info.isa, (std::vector<std::string>{"avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                                                "avx512_bf16", "amx_tile", "amx_bf16"}));
}

TEST(Cpu, ArmFeaturesAndAMissingModel) {
  const CpuInfo arm = parse(
      "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n\n"
      "processor\t: 1\nFeatures\t: fp asimd\n\nHardware\t: Board X\n");
  EXPECT_EQ(arm.model, "Board X");
  EXPECT_EQ(arm.isa, (std::vector<std::string>{"asimd", "sve", "bf16", "i8mm"}));
  const CpuInfo none = parse("");
  EXPECT_EQ(none.model, "unknown");
  EXPECT_TRUE(none.isa.empty());
}

#if defined(__x86_64__)
TEST(Cpu, ThisMachineAgreesWithTheCompilersCheck) {
  EXPECT_EQ(cpu_has("avx2"), bool(__builtin_cpu_supports("avx2")));
  EXPECT_EQ(cpu_has("avx512f"), bool(__builtin_cpu_supports("avx512f")));
}
#endif

}  // namespace
}  // namespace sd
