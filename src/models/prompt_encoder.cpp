#include "models/prompt_encoder.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>

#include <cmath>
#include <vector>

#include "models/common.h"

namespace sd::models {

PositionEmbeddingRandomImpl::PositionEmbeddingRandomImpl(int64_t num_pos_feats) {
  positional_encoding_gaussian_matrix =
      register_buffer("positional_encoding_gaussian_matrix", at::randn({2, num_pos_feats}));
}

at::Tensor PositionEmbeddingRandomImpl::pe_encoding(const at::Tensor& coords) {
  at::Tensor c = at::matmul(2 * coords - 1, positional_encoding_gaussian_matrix);
  c = 2 * M_PI * c;
  return at::cat({at::sin(c), at::cos(c)}, -1);
}

at::Tensor PositionEmbeddingRandomImpl::forward(Size2 size) {
  auto [h, w] = size;
  at::Tensor grid = at::ones({h, w}, positional_encoding_gaussian_matrix.options());
  at::Tensor y_embed = (grid.cumsum(0) - 0.5) / h;
  at::Tensor x_embed = (grid.cumsum(1) - 0.5) / w;
  return pe_encoding(at::stack({x_embed, y_embed}, -1)).permute({2, 0, 1});
}

at::Tensor PositionEmbeddingRandomImpl::forward_with_coords(const at::Tensor& coords,
                                                            Size2 image_size) {
  at::Tensor x = coords.select(-1, 0) / image_size[1];
  at::Tensor y = coords.select(-1, 1) / image_size[0];
  return pe_encoding(at::stack({x, y}, -1).to(positional_encoding_gaussian_matrix.scalar_type()));
}

PromptEncoderImpl::PromptEncoderImpl(int64_t embed_dim, Size2 image_embedding_size,
                                     Size2 input_image_size, int64_t mask_in_chans)
    : embed_dim_(embed_dim),
      image_embedding_size_(image_embedding_size),
      input_image_size_(input_image_size) {
  using torch::nn::Conv2d;
  using torch::nn::Conv2dOptions;
  using torch::nn::Embedding;
  pe_layer = register_module("pe_layer", PositionEmbeddingRandom(embed_dim / 2));
  point_embeddings = register_module("point_embeddings", torch::nn::ModuleList());
  for (int i = 0; i < 4; ++i) point_embeddings->push_back(Embedding(1, embed_dim));
  not_a_point_embed = register_module("not_a_point_embed", Embedding(1, embed_dim));
  mask_downscaling = register_module(
      "mask_downscaling",
      torch::nn::Sequential(Conv2d(Conv2dOptions(1, mask_in_chans / 4, 2).stride(2)),
                            LayerNorm2d(mask_in_chans / 4), torch::nn::GELU(),
                            Conv2d(Conv2dOptions(mask_in_chans / 4, mask_in_chans, 2).stride(2)),
                            LayerNorm2d(mask_in_chans), torch::nn::GELU(),
                            Conv2d(Conv2dOptions(mask_in_chans, embed_dim, 1))));
  no_mask_embed = register_module("no_mask_embed", Embedding(1, embed_dim));
}

at::Tensor PromptEncoderImpl::point_embedding(int64_t i) {
  return point_embeddings[i]->as<torch::nn::Embedding>()->weight;
}

at::Tensor PromptEncoderImpl::embed_points(const at::Tensor& points_in, const at::Tensor& labels_in,
                                           bool pad) {
  at::Tensor points = points_in + 0.5;  // centre of the pixel
  at::Tensor labels = labels_in;
  if (pad) {  // a "not a point" token stands in for the absent box
    points = at::cat({points, at::zeros({points.size(0), 1, 2}, points.options())}, 1);
    labels = at::cat({labels, at::full({labels.size(0), 1}, -1, labels.options())}, 1);
  }
  at::Tensor embedding = pe_layer->forward_with_coords(points, input_image_size_);
  auto is = [&](int64_t label) { return (labels == label).unsqueeze(-1); };
  embedding = at::where(is(-1), not_a_point_embed->weight, embedding);
  embedding = at::where(is(0), embedding + point_embedding(0), embedding);
  return at::where(is(1), embedding + point_embedding(1), embedding);
}

at::Tensor PromptEncoderImpl::embed_boxes(const at::Tensor& boxes) {
  at::Tensor corners = (boxes + 0.5).reshape({-1, 2, 2});  // centre of the pixel
  at::Tensor embedding = pe_layer->forward_with_coords(corners, input_image_size_);
  at::Tensor corner_embeds = at::cat({point_embedding(2), point_embedding(3)}, 0);  // 2xC
  return embedding + corner_embeds;
}

std::pair<at::Tensor, at::Tensor> PromptEncoderImpl::forward(const at::Tensor& points,
                                                             const at::Tensor& labels,
                                                             const at::Tensor& boxes,
                                                             const at::Tensor& masks) {
  int64_t bs = points.defined()  ? points.size(0)
               : boxes.defined() ? boxes.size(0)
               : masks.defined() ? masks.size(0)
                                 : 1;
  std::vector<at::Tensor> sparse;
  if (points.defined()) sparse.push_back(embed_points(points, labels, !boxes.defined()));
  if (boxes.defined()) sparse.push_back(embed_boxes(boxes));
  at::Tensor sparse_embeddings =
      sparse.empty() ? at::empty({bs, 0, embed_dim_}, no_mask_embed->weight.options())
                     : at::cat(sparse, 1);

  at::Tensor dense_embeddings =
      masks.defined() ? mask_downscaling->forward(masks)
                      : no_mask_embed->weight.reshape({1, -1, 1, 1})
                            .expand({bs, -1, image_embedding_size_[0], image_embedding_size_[1]});
  return {sparse_embeddings, dense_embeddings};
}

at::Tensor PromptEncoderImpl::get_dense_pe() {
  return pe_layer->forward(image_embedding_size_).unsqueeze(0);
}

}  // namespace sd::models
