#include "models/mask_decoder.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <vector>

#include "models/common.h"

namespace sd::models {

MLPImpl::MLPImpl(int64_t input_dim, int64_t hidden_dim, int64_t output_dim, int64_t num_layers) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < num_layers; ++i)
    layers->push_back(torch::nn::Linear(i == 0 ? input_dim : hidden_dim,
                                        i == num_layers - 1 ? output_dim : hidden_dim));
}

at::Tensor MLPImpl::forward(const at::Tensor& x_in) {
  at::Tensor x = x_in;
  for (size_t i = 0; i < layers->size(); ++i) {
    x = layers[i]->as<torch::nn::Linear>()->forward(x);
    if (i + 1 < layers->size()) x = at::relu(x);
  }
  return x;
}

MaskDecoderImpl::MaskDecoderImpl(int64_t transformer_dim, TwoWayTransformer transformer_module,
                                 int64_t num_multimask_outputs, int64_t iou_head_depth,
                                 int64_t iou_head_hidden_dim)
    : num_mask_tokens_(num_multimask_outputs + 1) {
  using torch::nn::ConvTranspose2d;
  using torch::nn::ConvTranspose2dOptions;
  transformer = register_module("transformer", transformer_module);
  iou_token = register_module("iou_token", torch::nn::Embedding(1, transformer_dim));
  mask_tokens =
      register_module("mask_tokens", torch::nn::Embedding(num_mask_tokens_, transformer_dim));
  int64_t d = transformer_dim;
  output_upscaling = register_module(
      "output_upscaling",
      torch::nn::Sequential(ConvTranspose2d(ConvTranspose2dOptions(d, d / 4, 2).stride(2)),
                            LayerNorm2d(d / 4), torch::nn::GELU(),
                            ConvTranspose2d(ConvTranspose2dOptions(d / 4, d / 8, 2).stride(2)),
                            torch::nn::GELU()));
  output_hypernetworks_mlps = register_module("output_hypernetworks_mlps", torch::nn::ModuleList());
  for (int64_t i = 0; i < num_mask_tokens_; ++i)
    output_hypernetworks_mlps->push_back(MLP(d, d, d / 8, 3));
  iou_prediction_head = register_module(
      "iou_prediction_head", MLP(d, iou_head_hidden_dim, num_mask_tokens_, iou_head_depth));
}

DecoderOutput MaskDecoderImpl::forward(const at::Tensor& image_embeddings,
                                       const at::Tensor& image_pe,
                                       const at::Tensor& sparse_prompt_embeddings,
                                       const at::Tensor& dense_prompt_embeddings,
                                       bool multimask_output, Trace* trace) {
  DecoderOutput all = predict_masks(image_embeddings, image_pe, sparse_prompt_embeddings,
                                    dense_prompt_embeddings, trace);
  // The first mask answers single-mask requests, the others are the multimask outputs.
  int64_t start = multimask_output ? 1 : 0;
  int64_t end = multimask_output ? num_mask_tokens_ : 1;
  return {all.masks.slice(1, start, end), all.iou_predictions.slice(1, start, end)};
}

DecoderOutput MaskDecoderImpl::predict_masks(const at::Tensor& image_embeddings,
                                             const at::Tensor& image_pe,
                                             const at::Tensor& sparse_prompt_embeddings,
                                             const at::Tensor& dense_prompt_embeddings,
                                             Trace* trace) {
  int64_t batch = sparse_prompt_embeddings.size(0);
  at::Tensor output_tokens = at::cat({iou_token->weight, mask_tokens->weight}, 0);
  output_tokens = output_tokens.unsqueeze(0).expand({batch, -1, -1});
  at::Tensor tokens = at::cat({output_tokens, sparse_prompt_embeddings}, 1);

  // One copy of the image per prompt.
  at::Tensor src = at::repeat_interleave(image_embeddings, batch, 0) + dense_prompt_embeddings;
  at::Tensor pos_src = at::repeat_interleave(image_pe, batch, 0);
  int64_t b = src.size(0), c = src.size(1), h = src.size(2), w = src.size(3);

  auto [hs, image] = transformer->forward(src, pos_src, tokens);
  if (trace) {
    trace->emplace_back("transformer_tokens", hs);
    trace->emplace_back("transformer_image", image);
  }
  at::Tensor iou_token_out = hs.select(1, 0);
  at::Tensor mask_tokens_out = hs.slice(1, 1, 1 + num_mask_tokens_);

  at::Tensor upscaled = output_upscaling->forward(image.transpose(1, 2).reshape({b, c, h, w}));
  std::vector<at::Tensor> hyper_in_list;
  for (int64_t i = 0; i < num_mask_tokens_; ++i)
    hyper_in_list.push_back(
        output_hypernetworks_mlps[i]->as<MLP>()->forward(mask_tokens_out.select(1, i)));
  at::Tensor hyper_in = at::stack(hyper_in_list, 1);  // B x masks x C/8
  int64_t uc = upscaled.size(1), uh = upscaled.size(2), uw = upscaled.size(3);
  at::Tensor masks =
      at::matmul(hyper_in, upscaled.reshape({b, uc, uh * uw})).reshape({b, -1, uh, uw});
  return {masks, iou_prediction_head(iou_token_out)};
}

}  // namespace sd::models
