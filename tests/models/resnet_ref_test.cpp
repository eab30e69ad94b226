// NanoSAM's ResNet student (models/resnet.h) against the Python module of
// tests/models/make_resnet_fixtures.py (torchvision's ResNet and NanoSAM's neck): the state
// dict's keys and shapes for resnet18 and resnet34, and resnet18's stages and embedding on the
// reference fixtures' sam_vit_t image, its weights loaded by name.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <iostream>

#include "io/config.h"
#include "models/encoder_testing.h"
#include "models/resnet.h"

namespace sd::models {
namespace {

using namespace sd::testing;
using encoder_testing::relative_error;
using encoder_testing::trace_error;

constexpr double kTolerance = 1e-4;  // fixtures README: embedding relative L2 error

std::string fixture(const std::string& leaf) {
  return source_dir() + "/tests/models/fixtures/resnet/" + leaf;
}

ResNetConfig resnet(const std::vector<int>& layers) {
  ResNetConfig c;
  c.layers = layers;
  return c;
}

uint64_t fnv1a64(const std::string& text) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char b : text) h = (h ^ b) * 0x100000001B3ull;
  return h;
}

uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// make_resnet_fixtures.py's seeded_values for an entry that is no BatchNorm's.
at::Tensor seeded_values(const std::string& key, at::IntArrayRef shape) {
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
io::StateDict python_weights(const ResNetEncoder& encoder) {
  const auto bn = load_tensors(fixture("bn.pth"));
  io::StateDict out;
  for (const auto& [key, value] : io::state_dict(encoder)) {
    auto it = bn.find(key);
    out.emplace_back(key, it != bn.end() ? it->second : seeded_values(key, value.sizes()));
  }
  return out;
}

// NanoSAM's keys (timm's features_only ResNet under `backbone.`, `up_1`, `proj`,
// `pos_embedding`), shapes and order, so that its PyTorch weights load.
TEST(ResNetRef, StateDictIsNanoSAMs) {
  const nlohmann::json manifest = io::read_json_file(fixture("manifest.json"));
  const std::pair<const char*, std::vector<int>> presets[] = {{"resnet18", {2, 2, 2, 2}},
                                                              {"resnet34", {3, 4, 6, 3}}};
  for (const auto& [name, layers] : presets) {
    SCOPED_TRACE(name);
    const io::StateDict ours = io::state_dict(ResNetEncoder(resnet(layers)));
    const nlohmann::json& theirs = manifest.at(name);
    ASSERT_EQ(ours.size(), theirs.size());
    for (size_t i = 0; i < ours.size(); ++i) {
      EXPECT_EQ(ours[i].first, theirs[i][0].get<std::string>()) << "entry " << i;
      EXPECT_EQ(ours[i].second.sizes().vec(), theirs[i][1].get<std::vector<int64_t>>())
          << ours[i].first;
    }
  }
}

TEST(ResNetRef, EveryStageAndTheEmbeddingMatchPython) {
  SD_REQUIRE_FIXTURES();
  ResNetEncoder encoder(ResNetConfig{});
  io::load_state_dict(encoder, python_weights(encoder), "", "make_resnet_fixtures.py's weights");
  encoder.eval();
  encoder.to(test_device());
  ModelFolder image_folder;
  image_folder.path = fixtures_root() + "/sam_vit_t";
  Trace trace;
  at::Tensor embedding;
  {
    torch::NoGradGuard no_grad;
    embedding = encoder.forward(encoder_testing::encoder_input(image_folder), &trace).cpu();
  }
  ASSERT_EQ(embedding.sizes(), (std::vector<int64_t>{1, 256, 64, 64}));
  const auto expected = load_tensors(fixture("expected.pth"));
  size_t stages = 0;
  for (const auto& [key, value] : expected) stages += key.rfind("trace.", 0) == 0;
  EXPECT_EQ(trace.size(), stages) << "stages traced vs trace.* entries of expected.pth";
  for (const auto& [stage, output] : trace) {
    auto it = expected.find("trace." + stage);
    if (it == expected.end()) {
      ADD_FAILURE() << "stage '" << stage << "' has no trace in expected.pth";
      continue;
    }
    double error = trace_error(output, it->second);
    std::cout << "resnet18 " << stage << ": max relative error " << error << "\n";
    EXPECT_LE(error, kTolerance) << stage;
  }
  const double channels =
      relative_error(embedding[0].slice(0, 0, 256, 32), expected.at("channels"));
  const double norms = relative_error(embedding[0].to(at::kDouble).flatten(1).norm(2, {1}),
                                      expected.at("channel_norms"));
  std::cout << "resnet18 embedding: relative L2 error " << channels
            << " (channels 0, 32, ..., 224), of the 256 channel norms " << norms << "\n";
  EXPECT_LE(channels, kTolerance);
  EXPECT_LE(norms, kTolerance);
}

}  // namespace
}  // namespace sd::models
