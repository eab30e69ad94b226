#include "models/mask_decoder.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <vector>

#include "kernels/mask_products.h"
#include "models/common.h"

namespace sd::models {

MLPImpl::MLPImpl(int64_t input_dim, int64_t hidden_dim, int64_t output_dim, int64_t num_layers) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < num_layers; ++i)
    layers->push_back(
        Linear(i == 0 ? input_dim : hidden_dim, i == num_layers - 1 ? output_dim : hidden_dim));
}

at::Tensor MLPImpl::forward(const at::Tensor& x_in) {
  at::Tensor x = x_in;
  for (size_t i = 0; i < layers->size(); ++i) {
    x = layers[i]->as<LinearImpl>()->forward(x);
    if (i + 1 < layers->size()) x = at::relu(x);
  }
  return x;
}

namespace {

// ConvTranspose2d with a 2x2 kernel and stride 2, pixel by pixel: each of the B x N pixels (rows
// of C_in features) makes its own 2x2 block of the output, one product to N x (2 x 2 x C_out),
// whose rows, seen as B x 4N x C_out, are the output's pixels "blocked" (each input pixel's
// block together, dy then dx). ATen's CPU kernel for it is its slow im2col path.
at::Tensor conv_transpose_2x2(const at::Tensor& pixels,
                              const torch::nn::ConvTranspose2dImpl& conv) {
  const at::Tensor& w = conv.weight;  // C_in x C_out x 2 x 2
  const int64_t cout = w.size(1);
  const at::Tensor weight = w.permute({2, 3, 1, 0}).reshape({4 * cout, w.size(0)});
  return linear_of_rows(pixels, weight, conv.bias.repeat({4}), conv.is_training())
      .view({pixels.size(0), -1, cout});
}

// B x M x 16hw values of upscale's blocked pixels (input row i, column j, then each
// transposed convolution's dy, dx) -> B x M x 4h x 4w, each at y = 4i + 2dy1 + dy2,
// x = 4j + 2dx1 + dx2.
at::Tensor unblock(const at::Tensor& blocked, int64_t h, int64_t w) {
  const int64_t b = blocked.size(0), m = blocked.size(1);
  return blocked.view({b, m, h, w, 2, 2, 2, 2})
      .permute({0, 1, 2, 4, 6, 3, 5, 7})
      .reshape({b, m, 4 * h, 4 * w});
}

}  // namespace

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
  return forward(prepare_image(image_embeddings, image_pe, dense_prompt_embeddings,
                               sparse_prompt_embeddings.size(0)),
                 sparse_prompt_embeddings, multimask_output, trace);
}

DecoderOutput MaskDecoderImpl::forward(const DecoderImage& image,
                                       const at::Tensor& sparse_prompt_embeddings,
                                       bool multimask_output, Trace* trace) {
  // The first mask answers single-mask requests, the others are the multimask outputs. Without
  // autograd only the masks returned are computed; when training, all are, so that every
  // hypernetwork gets a gradient (zeros for the ones not returned) as in Python.
  int64_t start = multimask_output ? 1 : 0;
  int64_t end = multimask_output ? num_mask_tokens_ : 1;
  const bool all = at::GradMode::is_enabled();
  const int64_t first = all ? 0 : start;
  DecoderOutput out =
      predict_masks(image, sparse_prompt_embeddings, first, all ? num_mask_tokens_ : end, trace);
  return {out.masks.slice(1, start - first, end - first), out.iou_predictions.slice(1, start, end)};
}

DecoderImage MaskDecoderImpl::prepare_image(const at::Tensor& image_embeddings,
                                            const at::Tensor& image_pe,
                                            const at::Tensor& dense_prompt_embeddings,
                                            int64_t prompts) {
  // One image for all prompts where none brings a mask (their dense embedding is the same): the
  // transformer's first layer projects its tokens once and broadcasts them against the prompts'
  // (those projections do not depend on the prompt). Else one copy of the image per prompt. The
  // positional encoding is the same for all.
  const at::Tensor& dense = dense_prompt_embeddings;
  const bool same_dense = dense.size(0) > 0 && (dense.size(0) == 1 || dense.stride(0) == 0);
  at::Tensor src;
  if (image_embeddings.size(0) == 1)  // broadcasts against the prompts' dense embeddings
    src = image_embeddings + (same_dense ? dense.narrow(0, 0, 1) : dense);
  else
    src = at::repeat_interleave(image_embeddings, prompts, 0) + dense;
  return {transformer->image_side(src, image_pe), src.size(2), src.size(3)};
}

at::Tensor MaskDecoderImpl::upscale(const at::Tensor& image) {
  // output_upscaling's modules: ConvTranspose2d, LayerNorm2d, GELU, ConvTranspose2d, GELU, all
  // pixel by pixel, so they run on the pixels in the transposed convolutions' blocked order.
  auto& seq = *output_upscaling;
  at::Tensor x = conv_transpose_2x2(image, *seq.ptr<torch::nn::ConvTranspose2dImpl>(0));
  x = at::gelu(seq.ptr<LayerNorm2dImpl>(1)->forward_channels_last(x));
  return at::gelu(conv_transpose_2x2(x, *seq.ptr<torch::nn::ConvTranspose2dImpl>(3)));
}

DecoderOutput MaskDecoderImpl::predict_masks(const DecoderImage& image,
                                             const at::Tensor& sparse_prompt_embeddings,
                                             int64_t first_mask, int64_t end_mask, Trace* trace) {
  int64_t batch = sparse_prompt_embeddings.size(0);
  at::Tensor output_tokens = at::cat({iou_token->weight, mask_tokens->weight}, 0);
  output_tokens = output_tokens.unsqueeze(0).expand({batch, -1, -1});
  at::Tensor tokens = at::cat({output_tokens, sparse_prompt_embeddings}, 1);

  auto [hs, keys] = transformer->forward(image.transformer, tokens);
  if (trace) {
    trace->emplace_back("transformer_tokens", hs);
    trace->emplace_back("transformer_image", keys);
  }
  return output_heads(hs, keys, image.h, image.w, first_mask, end_mask);
}

DecoderOutput MaskDecoderImpl::output_heads(const at::Tensor& hs, const at::Tensor& image,
                                            int64_t h, int64_t w, int64_t first_mask,
                                            int64_t end_mask) {
  at::Tensor iou_token_out = hs.select(1, 0);
  at::Tensor mask_tokens_out = hs.slice(1, 1, 1 + num_mask_tokens_);

  const at::Tensor pixels = upscale(image);  // B x 16hw x C/8, blocked
  std::vector<at::Tensor> hyper_in_list;
  for (int64_t i = first_mask; i < end_mask; ++i)
    hyper_in_list.push_back(
        output_hypernetworks_mlps[i]->as<MLP>()->forward(mask_tokens_out.select(1, i)));
  at::Tensor hyper_in = at::stack(hyper_in_list, 1);  // B x (end - first) x C/8
  // (B x 16hw x C/8) . (B x C/8 x masks), the upscaled image as it lies: its gradient comes back
  // contiguous, which LibTorch 1.13's GELU backward (oneDNN) silently assumes of it. The masks
  // are put in place after the product: fewer values to move than the image's.
  const at::Tensor masks = kernels::mask_products_apply(pixels, hyper_in)
                               ? kernels::mask_products(pixels, hyper_in)
                               : at::matmul(pixels, hyper_in.transpose(1, 2)).transpose(1, 2);
  return {unblock(masks, h, w), iou_prediction_head(iou_token_out)};
}

}  // namespace sd::models
