#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

// The parsers that take a path get the fuzzer's input as this process's own file.
namespace sd::fuzz {

inline std::string input_file(const uint8_t* data, size_t size, const char* suffix) {
  static const std::string path = "/tmp/sd-fuzz-" + std::to_string(getpid()) + suffix;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return path;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}

}  // namespace sd::fuzz
