#include "models/sam.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <utility>
#include <variant>

#include "kernels/upsample.h"
#include "models/preprocess.h"
#include "util/error.h"
#include "util/text.h"

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
  // Low-res logits of a bf16/fp16 decoder (autocast) are resized in fp32: more exact, and the
  // separable pass takes fp32 (ATen's bf16 resize dominated a bf16 prompt on CPUs).
  const bool reduced = masks.scalar_type() == at::kBFloat16 || masks.scalar_type() == at::kHalf;
  at::Tensor m = kernels::upsample_bilinear(reduced ? masks.to(at::kFloat) : masks,
                                            {img_size(), img_size()}, input_size);
  return kernels::upsample_bilinear(m, original_size, original_size);
}

namespace {

// The prompt encoder on `prompts`: (sparse, dense) embeddings, both given to `trace`.
std::pair<at::Tensor, at::Tensor> encode_prompts(PromptEncoderImpl& encoder, const Prompts& prompts,
                                                 Trace* trace) {
  auto embeddings =
      encoder.forward(prompts.point_coords, prompts.point_labels, prompts.box, prompts.mask_input);
  if (trace) {
    trace->emplace_back("sparse_embeddings", embeddings.first);
    trace->emplace_back("dense_embeddings", embeddings.second);
  }
  return embeddings;
}

}  // namespace

DecoderOutput SamImpl::decode(const at::Tensor& embedding, const Prompts& prompts,
                              bool multimask_output, Trace* trace) {
  auto [sparse, dense] = encode_prompts(*prompt_encoder, prompts, trace);
  return mask_decoder->forward(embedding, prompt_encoder->get_dense_pe(), sparse, dense,
                               multimask_output, trace);
}

DecoderImage SamImpl::prepare_decoder(const at::Tensor& embedding) {
  const at::Tensor dense = prompt_encoder->forward({}, {}, {}, {}).second;  // no mask
  return mask_decoder->prepare_image(embedding, prompt_encoder->get_dense_pe(), dense, 1);
}

DecoderOutput SamImpl::decode(const DecoderImage& image, const Prompts& prompts,
                              bool multimask_output, Trace* trace) {
  if (prompts.mask_input.defined())
    throw Error(
        "decode: a mask prompt changes the image's side of the decoder; decode it with "
        "the embedding");
  const at::Tensor sparse = encode_prompts(*prompt_encoder, prompts, trace).first;
  return mask_decoder->forward(image, sparse, multimask_output, trace);
}

Sam build_sam(const EncoderConfig& config) { return build_sam(config, make_image_encoder(config)); }

Sam build_sam(const EncoderConfig& config, std::shared_ptr<ImageEncoder> image_encoder) {
  const int64_t prompt_embed_dim = 256;
  const int64_t vit_patch_size = 16;
  const int64_t image_size = config.family().img_size(config);
  int64_t grid = image_size / vit_patch_size;
  auto transformer = TwoWayTransformer(/*depth=*/2, prompt_embed_dim, /*num_heads=*/8,
                                       /*mlp_dim=*/2048);
  return Sam(std::move(image_encoder),
             PromptEncoder(prompt_embed_dim, Size2{grid, grid}, Size2{image_size, image_size},
                           /*mask_in_chans=*/16),
             MaskDecoder(prompt_embed_dim, transformer, /*num_multimask_outputs=*/3,
                         /*iou_head_depth=*/3, /*iou_head_hidden_dim=*/256));
}

bool load_sam_heads(SamImpl& sam, const io::StateDict& entries, const std::string& source) {
  const bool has_decoder = std::any_of(entries.begin(), entries.end(), [](const auto& entry) {
    return starts_with(entry.first, "mask_decoder.");
  });
  if (!has_decoder) return false;
  io::load_state_dict(*sam.prompt_encoder, entries, "prompt_encoder.", source);
  io::load_state_dict(*sam.mask_decoder, entries, "mask_decoder.", source);
  return true;
}

}  // namespace sd::models
