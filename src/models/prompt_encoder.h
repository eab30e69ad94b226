#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>

#include <utility>

#include "models/transforms.h"

namespace sd::models {

// Positional encoding by random spatial frequencies (a 2 x num_pos_feats Gaussian matrix).
class PositionEmbeddingRandomImpl : public torch::nn::Module {
 public:
  explicit PositionEmbeddingRandomImpl(int64_t num_pos_feats = 64);
  // The encoding of the centres of an h x w grid: Cxhxw with C = 2 * num_pos_feats.
  at::Tensor forward(Size2 size);
  // BxNx2 (x, y) coordinates in pixels of an image of `image_size` (H, W) -> BxNxC.
  at::Tensor forward_with_coords(const at::Tensor& coords, Size2 image_size);

  at::Tensor positional_encoding_gaussian_matrix;

 private:
  // coords in [0, 1]: ...x2 -> ...xC
  at::Tensor pe_encoding(const at::Tensor& coords);
};
TORCH_MODULE(PositionEmbeddingRandom);

// SAM's prompt encoder: points and boxes -> sparse tokens, a low-res mask -> a dense
// embedding. Prompts are in the frame of the resized (not yet padded) input image.
class PromptEncoderImpl : public torch::nn::Module {
 public:
  PromptEncoderImpl(int64_t embed_dim, Size2 image_embedding_size, Size2 input_image_size,
                    int64_t mask_in_chans);

  // Any of the prompts may be undefined (absent): points BxNx2 with labels BxN (1 fg, 0 bg,
  // -1 padding), boxes Bx4, masks Bx1x(4h)x(4w) logits. Returns sparse BxTxC and dense
  // BxCxhxw embeddings.
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& points, const at::Tensor& labels,
                                            const at::Tensor& boxes, const at::Tensor& masks);
  // 1xCxhxw encoding of the image embedding's grid.
  at::Tensor get_dense_pe();

  int64_t embed_dim() const { return embed_dim_; }
  Size2 input_image_size() const { return input_image_size_; }
  Size2 image_embedding_size() const { return image_embedding_size_; }

  PositionEmbeddingRandom pe_layer{nullptr};
  torch::nn::ModuleList point_embeddings{nullptr};  // fg/bg point, box corners 1 and 2
  torch::nn::Embedding not_a_point_embed{nullptr};
  torch::nn::Sequential mask_downscaling{nullptr};
  torch::nn::Embedding no_mask_embed{nullptr};

 private:
  at::Tensor embed_points(const at::Tensor& points, const at::Tensor& labels, bool pad);
  at::Tensor embed_boxes(const at::Tensor& boxes);
  at::Tensor point_embedding(int64_t i);

  int64_t embed_dim_;
  Size2 image_embedding_size_;
  Size2 input_image_size_;
};
TORCH_MODULE(PromptEncoder);

}  // namespace sd::models
