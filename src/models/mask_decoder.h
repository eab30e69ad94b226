#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>

#include "models/image_encoder.h"
#include "models/transformer.h"

namespace sd::models {

// `num_layers` Linear layers (`layers.N`) with ReLU between them.
class MLPImpl : public torch::nn::Module {
 public:
  MLPImpl(int64_t input_dim, int64_t hidden_dim, int64_t output_dim, int64_t num_layers);
  at::Tensor forward(const at::Tensor& x);

  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(MLP);

struct DecoderOutput {
  at::Tensor masks;            // BxCx(4h)x(4w) low-res logits
  at::Tensor iou_predictions;  // BxC
};

// The mask decoder's work on one image before it reads a prompt: the transformer's first image
// side (ImageSide) of the embedding plus the prompts' dense embedding, on an h x w grid. With one
// dense embedding for all prompts (none brings a mask) it is the same for every prompt of the
// image: SamPredictor makes it once and keeps it.
struct DecoderImage {
  ImageSide transformer;
  int64_t h = 0, w = 0;
};

// SAM's mask decoder: the two-way transformer between output tokens + prompt tokens
// and the image embedding, then upscaling and one hypernetwork MLP per mask token.
class MaskDecoderImpl : public torch::nn::Module {
 public:
  MaskDecoderImpl(int64_t transformer_dim, TwoWayTransformer transformer,
                  int64_t num_multimask_outputs = 3, int64_t iou_head_depth = 3,
                  int64_t iou_head_hidden_dim = 256);

  // image_embeddings: 1xCxhxw (repeated for each of the B prompts), image_pe: 1xCxhxw,
  // sparse: BxTxC, dense: BxCxhxw. C = 3 masks (multimask_output) or the single one.
  // `trace` receives `transformer_tokens` and `transformer_image` (BxhwxC).
  DecoderOutput forward(const at::Tensor& image_embeddings, const at::Tensor& image_pe,
                        const at::Tensor& sparse_prompt_embeddings,
                        const at::Tensor& dense_prompt_embeddings, bool multimask_output,
                        Trace* trace = nullptr);
  // forward in two steps: the image's side for `prompts` prompts (dense: 1xCxhxw, shared, or
  // BxCxhxw), then the prompts' sparse embeddings (BxTxC) against it.
  DecoderImage prepare_image(const at::Tensor& image_embeddings, const at::Tensor& image_pe,
                             const at::Tensor& dense_prompt_embeddings, int64_t prompts);
  DecoderOutput forward(const DecoderImage& image, const at::Tensor& sparse_prompt_embeddings,
                        bool multimask_output, Trace* trace = nullptr);

  // What follows the transformer, for its tokens (B x T x C) and image (B x hw x C) of an h x w
  // grid: masks first_mask .. end_mask - 1 from the upscaled image and the mask tokens'
  // hypernetworks, and the IoU predictions of all num_multimask_outputs + 1.
  DecoderOutput output_heads(const at::Tensor& tokens, const at::Tensor& image, int64_t h,
                             int64_t w, int64_t first_mask, int64_t end_mask);

  TwoWayTransformer transformer{nullptr};
  torch::nn::Embedding iou_token{nullptr};
  torch::nn::Embedding mask_tokens{nullptr};
  torch::nn::Sequential output_upscaling{nullptr};
  torch::nn::ModuleList output_hypernetworks_mlps{nullptr};
  MLP iou_prediction_head{nullptr};

 private:
  // Masks first_mask .. end_mask - 1 and the IoU predictions of all
  // num_multimask_outputs + 1.
  DecoderOutput predict_masks(const DecoderImage& image, const at::Tensor& sparse_prompt_embeddings,
                              int64_t first_mask, int64_t end_mask, Trace* trace);
  // output_upscaling on the transformer's image, B x hw x C -> B x 16hw x C/8: the 4h x 4w
  // pixels in the order the transposed convolutions make them (mask_decoder.cpp's unblock).
  at::Tensor upscale(const at::Tensor& image);

  int64_t num_mask_tokens_;
};
TORCH_MODULE(MaskDecoder);

}  // namespace sd::models
