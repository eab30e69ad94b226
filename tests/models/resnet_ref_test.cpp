// NanoSAM's ResNet student (models/resnet.h) against the Python module of
// tests/models/make_resnet_fixtures.py (torchvision's ResNet and NanoSAM's neck): the state
// dict's keys and shapes for resnet18 and resnet34, and resnet18's stages and embedding on the
// reference fixtures' sam_vit_t image, its weights loaded by name.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>

#include "io/config.h"
#include "models/encoder_testing.h"
#include "models/resnet.h"
#include "models/resnet_testing.h"

namespace sd::models {
namespace {

using namespace sd::testing;
using encoder_testing::relative_error;
using encoder_testing::trace_error;
using resnet_testing::fixture;
using resnet_testing::python_weights;

constexpr double kTolerance = 1e-4;  // fixtures README: embedding relative L2 error

ResNetConfig resnet(const std::vector<int>& layers) {
  ResNetConfig c;
  c.layers = layers;
  return c;
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
  ModelFolder image_folder;  // the fixtures' image, as the TinyViT folder holds it
  image_folder.path = fixtures_root() + "/sam_vit_t";
  if (!std::filesystem::exists(image_folder.file("cases.pth")))  // gpu_check carries ViTs only
    GTEST_SKIP() << "the ResNet's input is the TinyViT folder's image: no "
                 << image_folder.file("cases.pth");
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
