#pragma once
#include <ATen/ATen.h>

#include <fstream>
#include <string>
#include <vector>

#include "store/format.h"
#include "store/manifest.h"

// Small stores for the store tests: records are 8x4x4 so that hundreds write in milliseconds.
namespace sd::store::testing {

inline Manifest test_manifest(DType dtype = DType::fp16) {
  Manifest m;
  m.teacher = {{"embed_dim", 96}, {"depth", 4}, {"global_attn_indexes", {1, 3}}};
  m.checkpoint_sha256 = "ab12";
  m.checkpoint_name = "weights.pth";
  m.preprocess = {{"img_size", 1024}, {"resize", "pil_bilinear_antialias"}};
  m.dtype = dtype;
  return m;
}

inline std::string key_of(int i) { return "sa_" + std::to_string(100000 + i); }

// The same values for a key on every call.
inline at::Tensor values_of(int i) {
  at::manual_seed(i);
  return at::randn({8, 4, 4}) * (i + 1);
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace sd::store::testing
