#pragma once
#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/config.h"

namespace sd::models {

// Named stage outputs, in the order computed (`patch_embed`, `blocks.3` or `layers.1.blocks.0`,
// `layers.1`, `neck`): the `trace.*` keys of the reference fixtures.
using Trace = std::vector<std::pair<std::string, at::Tensor>>;

// What SAM needs of an image encoder: Bx3x1024x1024 normalised, padded images in,
// Bx256x64x64 embeddings out. Implemented by ImageEncoderViT and TinyViT.
class ImageEncoder : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& x, Trace* trace = nullptr) = 0;
  // Memory for time in training: the first `stages` stages run again in backward instead of
  // keeping their activations; false when the encoder has no such stages (TinyViT has).
  virtual bool recompute_stages(int64_t stages) { return stages == 0; }
};

// The encoder of `config`'s family (EncoderFamily::build).
std::shared_ptr<ImageEncoder> make_image_encoder(const EncoderConfig& config);

}  // namespace sd::models
