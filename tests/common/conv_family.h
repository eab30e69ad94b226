#pragma once
// An encoder family defined in the tests alone (no file under src/ knows it), for the tests
// that a family brought by a program built on the library goes everywhere the built-in ones
// do. Registering it (models::register_encoder_family) is the test's own step.
#include <ATen/ATen.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/modules/conv.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "io/config_table.h"
#include "models/encoder_family.h"
#include "models/image_encoder.h"
#include "util/text.h"

namespace sd::testing {

// A patchify convolution (16x16, stride 16) and a 1x1 projection to 256 channels:
// Bx3x1024x1024 -> Bx256x64x64, as SAM's mask decoder takes it.
struct ConvConfig {
  int width = 8;
  static const models::EncoderFamily& family();
  static const io::ConfigTable<ConvConfig>& table();
};

inline const io::ConfigTable<ConvConfig>& ConvConfig::table() {
  static const io::ConfigTable<ConvConfig> table = io::agreeing(io::ConfigTable<ConvConfig>({
      io::field("conv_width", &ConvConfig::width, 8, io::positive(), "channels of the patches"),
  }));
  return table;
}

class ConvEncoder : public models::ImageEncoder {
 public:
  explicit ConvEncoder(const ConvConfig& c)
      : patch(register_module(
            "patch", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, c.width, 16).stride(16)))),
        proj(register_module("proj", torch::nn::Conv2d(c.width, 256, 1))) {}
  at::Tensor forward(const at::Tensor& x, models::Trace* trace) override {
    at::Tensor y = proj->forward(torch::nn::functional::gelu(patch->forward(x)));
    if (trace) trace->emplace_back("proj", y);
    return y;
  }

  torch::nn::Conv2d patch, proj;
};

class ConvFamily : public models::TableFamily<ConvConfig, ConvEncoder> {
 public:
  std::string name() const override { return "TestConv"; }
  std::string key() const override { return "conv_width"; }
  std::vector<std::pair<std::string, models::EncoderConfig>> presets() const override {
    return {{"conv_8", ConvConfig{8}}};
  }
  int64_t img_size(const models::EncoderConfig&) const override { return 1024; }
  nlohmann::json observe(const models::WeightShapes& shapes,
                         const std::string& prefix) const override {
    const auto* patch = shapes.shape(prefix + "patch.weight", 4);
    if (!patch || !shapes.shape(prefix + "proj.weight", 4)) return nullptr;
    return {{"conv_width", (*patch)[0]}};
  }
  std::string unshown(const nlohmann::json&) const override { return ""; }
  std::vector<std::string> summary_keys() const override { return {"conv_width"}; }
  int block_of(const std::string& parameter, const models::EncoderConfig&) const override {
    if (starts_with(parameter, "patch.")) return 0;
    return starts_with(parameter, "proj.") ? 1 : -1;
  }
  int blocks(const models::EncoderConfig&) const override { return 2; }
};

inline const models::EncoderFamily& ConvConfig::family() {
  static const ConvFamily family;
  return family;
}

}  // namespace sd::testing
