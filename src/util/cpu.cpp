#include "util/cpu.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

namespace sd {

const std::vector<std::string> kCpuIsaFlags = {
    "avx2",        "fma",         "avx512f",  "avx512bw", "avx512vl", "avx512_vnni",
    "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
    "asimd",       "sve",         "sve2",     "bf16",     "i8mm"};

namespace {

std::string trimmed(const std::string& s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

}  // namespace

CpuInfo parse_cpuinfo(std::istream& text) {
  CpuInfo info;
  std::set<std::string> flags;
  std::string line;
  bool seen_flags = false;
  while (std::getline(text, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) {
      if (seen_flags && !info.model.empty()) break;  // the blank line ending the first processor
      continue;
    }
    const std::string key = trimmed(line.substr(0, colon)), value = trimmed(line.substr(colon + 1));
    if (info.model.empty() && (key == "model name" || key == "Hardware" || key == "Processor"))
      info.model = value;
    if (!seen_flags && (key == "flags" || key == "Features")) {
      std::istringstream words(value);
      for (std::string w; words >> w;) flags.insert(w);
      seen_flags = true;
    }
  }
  if (info.model.empty()) info.model = "unknown";
  for (const std::string& flag : kCpuIsaFlags)
    if (flags.count(flag)) info.isa.push_back(flag);
  return info;
}

const CpuInfo& cpu_info() {
  static const CpuInfo info = [] {
    std::ifstream text("/proc/cpuinfo");
    return parse_cpuinfo(text);
  }();
  return info;
}

bool cpu_has(const std::string& flag) {
  const std::vector<std::string>& isa = cpu_info().isa;
  return std::find(isa.begin(), isa.end(), flag) != isa.end();
}

}  // namespace sd
