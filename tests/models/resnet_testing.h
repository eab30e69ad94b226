#pragma once
// Shared by the tests of NanoSAM's ResNet student: the weights of the Python module of
// tests/models/make_resnet_fixtures.py, whose reference outputs are in
// tests/models/fixtures/resnet.
#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "common/fixtures.h"
#include "io/state_dict.h"
#include "models/resnet.h"

namespace sd::models::resnet_testing {

inline std::string fixture(const std::string& leaf) {
  return sd::testing::source_dir() + "/tests/models/fixtures/resnet/" + leaf;
}

inline uint64_t fnv1a64(const std::string& text) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char b : text) h = (h ^ b) * 0x100000001B3ull;
  return h;
}

inline uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// make_resnet_fixtures.py's seeded_values for an entry that is no BatchNorm's.
inline at::Tensor seeded_values(const std::string& key, at::IntArrayRef shape) {
  at::Tensor t = at::empty(shape, at::kFloat);
  const int64_t n = t.numel();
  const double bound = key == "pos_embedding" ? 0.5
                       : shape.size() > 1     ? std::sqrt(6.0 / double(n / shape[0]))
                                              : 0.1;
  const uint64_t seed = fnv1a64(key);
  float* out = t.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    const double u = double(splitmix64(seed + uint64_t(i)) >> 40) / double(1 << 24);
    out[i] = static_cast<float>((2.0 * u - 1.0) * bound);
  }
  return t;
}

// The Python module's weights: bn.pth's BatchNorm entries, the others seeded.
inline io::StateDict python_weights(const ResNetEncoder& encoder) {
  const auto bn = sd::testing::load_tensors(fixture("bn.pth"));
  io::StateDict out;
  for (const auto& [key, value] : io::state_dict(encoder)) {
    auto it = bn.find(key);
    out.emplace_back(key, it != bn.end() ? it->second : seeded_values(key, value.sizes()));
  }
  return out;
}

}  // namespace sd::models::resnet_testing
