#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <string>

#include "io/state_dict.h"
#include "models/config.h"
#include "models/image_encoder.h"
#include "models/mask_decoder.h"
#include "models/prompt_encoder.h"
#include "models/transforms.h"

namespace sd::models {

// Prompts for one image; an undefined tensor is an absent prompt.
// predict(): point_coords Nx2 (x, y) and box 4 (x0, y0, x1, y1) in original pixels,
// point_labels N (1 foreground, 0 background), mask_input 1x256x256 logits.
// predict_torch(): the same with a leading batch dimension B, already in the frame of the
// resized image (ResizeLongestSide), mask_input Bx1x256x256.
struct Prompts {
  at::Tensor point_coords;
  at::Tensor point_labels;
  at::Tensor box;
  at::Tensor mask_input;
};

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
  // padding off (`input_size`), bilinear to the original size. bf16/fp16 logits come out fp32.
  at::Tensor postprocess_masks(const at::Tensor& masks, Size2 input_size,
                               Size2 original_size) const;

  // The prompt encoder and mask decoder on one image's 1x256x64x64 embedding for B prompts
  // in the frame of the resized image (as predict_torch takes them): BxCx256x256 low-res
  // logits and BxC predicted IoUs. Keeps the autograd graph (fine-tuning trains through it).
  // `trace` receives sparse_embeddings, dense_embeddings and the decoder's trace.
  DecoderOutput decode(const at::Tensor& embedding, const Prompts& prompts, bool multimask_output,
                       Trace* trace = nullptr);
  // decode in two steps for prompts without a mask input, whose dense embedding is the prompt
  // encoder's no-mask one: the mask decoder's work on the embedding alone (the same for all
  // such prompts), then the prompts against it.
  DecoderImage prepare_decoder(const at::Tensor& embedding);
  DecoderOutput decode(const DecoderImage& image, const Prompts& prompts, bool multimask_output,
                       Trace* trace = nullptr);

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
// The same around an existing image encoder of that config (shared, not copied).
Sam build_sam(const EncoderConfig& config, std::shared_ptr<ImageEncoder> image_encoder);

// Loads the prompt_encoder.* and mask_decoder.* entries of a full SAM state dict read from
// `source` strictly into `sam`; false (nothing loaded) when it has no mask_decoder.* entry.
bool load_sam_heads(SamImpl& sam, const io::StateDict& entries, const std::string& source);

}  // namespace sd::models
