#include "models/sam.h"

#include <ATen/ATen.h>

#include <variant>

#include "models/preprocess.h"

namespace sd::models {

SamImpl::SamImpl(std::shared_ptr<ImageEncoder> image_encoder_module,
                 PromptEncoder prompt_encoder_module, MaskDecoder mask_decoder_module) {
  image_encoder = register_module("image_encoder", image_encoder_module);
  prompt_encoder = register_module("prompt_encoder", prompt_encoder_module);
  mask_decoder = register_module("mask_decoder", mask_decoder_module);
}

at::Tensor SamImpl::preprocess(const at::Tensor& image) const { return normalize_and_pad(image); }

at::Tensor SamImpl::postprocess_masks(const at::Tensor& masks, Size2 input_size,
                                      Size2 original_size) const {
  at::Tensor m = at::upsample_bilinear2d(masks, {img_size(), img_size()}, /*align_corners=*/false);
  m = m.slice(2, 0, input_size[0]).slice(3, 0, input_size[1]);
  return at::upsample_bilinear2d(m, {original_size[0], original_size[1]}, /*align_corners=*/false);
}

Sam build_sam(const EncoderConfig& config) {
  const int64_t prompt_embed_dim = 256;
  const int64_t vit_patch_size = 16;
  int64_t image_size = std::visit([](const auto& c) { return int64_t{c.img_size}; }, config);
  int64_t grid = image_size / vit_patch_size;
  auto transformer = TwoWayTransformer(/*depth=*/2, prompt_embed_dim, /*num_heads=*/8,
                                       /*mlp_dim=*/2048);
  return Sam(make_image_encoder(config),
             PromptEncoder(prompt_embed_dim, Size2{grid, grid}, Size2{image_size, image_size},
                           /*mask_in_chans=*/16),
             MaskDecoder(prompt_embed_dim, transformer, /*num_multimask_outputs=*/3,
                         /*iou_head_depth=*/3, /*iou_head_hidden_dim=*/256));
}

}  // namespace sd::models
