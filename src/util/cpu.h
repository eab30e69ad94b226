#pragma once
#include <istream>
#include <string>
#include <vector>

namespace sd {

// Where a figure was measured: the CPU's model name and the instruction sets among those the
// kernels and LibTorch's choose between that it has.
struct CpuInfo {
  std::string model;  // "model name" (x86) or "Hardware"/"Processor"; "unknown" when absent
  std::vector<std::string> isa;  // in kCpuIsaFlags' order
};

// The flags reported, x86 first (AVX2 and FMA, AVX-512 and its BF16/FP16/VNNI extensions, AMX's
// tiles), then Arm's (NEON, SVE, BF16, I8MM), as /proc/cpuinfo spells them.
extern const std::vector<std::string> kCpuIsaFlags;

// The first processor of a /proc/cpuinfo text.
CpuInfo parse_cpuinfo(std::istream& text);

// This machine's (read once; "unknown" and no flags where /proc/cpuinfo is missing).
const CpuInfo& cpu_info();

// Whether this machine's CPU reports `flag` (one of kCpuIsaFlags).
bool cpu_has(const std::string& flag);

}  // namespace sd
