#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <memory>

#include "models/config.h"
#include "models/image_encoder.h"
#include "models/mask_decoder.h"
#include "models/prompt_encoder.h"
#include "models/transforms.h"

namespace sd::models {

// SAM: image encoder, prompt encoder, mask decoder. The pixel mean/std are constants of
// the preprocessing, not state (non-persistent buffers in the reference).
class SamImpl : public torch::nn::Module {
 public:
  SamImpl(std::shared_ptr<ImageEncoder> image_encoder, PromptEncoder prompt_encoder,
          MaskDecoder mask_decoder);

  // uint8 HxWx3 RGB resized to a longest side of 1024 -> normalised, zero-padded
  // 1x3x1024x1024 float (see models/preprocess.h).
  at::Tensor preprocess(const at::Tensor& image) const;
  // BxCxhxw low-res logits -> BxCxHxW at `original_size`: bilinear to img_size, crop the
  // padding off (`input_size`), bilinear to the original size.
  at::Tensor postprocess_masks(const at::Tensor& masks, Size2 input_size,
                               Size2 original_size) const;

  // Side of the square encoder input (1024).
  int64_t img_size() const { return prompt_encoder->input_image_size()[0]; }
  c10::Device device() const { return prompt_encoder->no_mask_embed->weight.device(); }

  static constexpr double mask_threshold = 0.0;

  std::shared_ptr<ImageEncoder> image_encoder;
  PromptEncoder prompt_encoder{nullptr};
  MaskDecoder mask_decoder{nullptr};
};
TORCH_MODULE(Sam);

// SAM with the given image encoder and the prompt encoder / mask decoder of every SAM and
// MobileSAM checkpoint (256 channels, 64x64 embedding for a 1024 input).
Sam build_sam(const EncoderConfig& config);

}  // namespace sd::models
