#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <utility>

#include "models/common.h"

namespace sd::models {

// Multi-head attention whose q/k/v projections may shrink the width to
// embedding_dim / downsample_rate before the heads are split.
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t embedding_dim, int64_t num_heads, int64_t downsample_rate = 1);
  // q: BxNqxC, k and v: BxNkxC -> BxNqxC.
  at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);
  // forward in two steps: x (BxNxC) through one of q_proj, k_proj, v_proj into heads
  // (Bxheadsx N x C/heads), then the attention of such heads, recombined through out_proj.
  at::Tensor heads(Linear& projection, const at::Tensor& x) const;
  at::Tensor attend(const at::Tensor& qh, const at::Tensor& kh, const at::Tensor& vh);
  // Which side is the image's tokens, for how their projections multiply (models/common.h).
  void keys_from_image();
  void queries_from_image();

  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
  int64_t num_heads() const { return num_heads_; }

 private:
  int64_t num_heads_;
};
TORCH_MODULE(Attention);

// What a two-way block computes of the image's tokens before it reads the prompts' tokens: the
// tokens with their positional encoding and its two cross attentions' projections of them. The
// first block's is the same for every prompt of one image (and dense embedding), so it can be
// made once per image (TwoWayTransformer::image_side) and given to each prompt's forward.
struct ImageSide {
  at::Tensor keys;         // BxHWxC, B = 1 where the prompts share the image
  at::Tensor key_pe;       // 1xHWxC or BxHWxC
  at::Tensor keys_and_pe;  // keys + key_pe
  at::Tensor token_to_image_k, token_to_image_v, image_to_token_q;  // Bxheads x HW x C'
};

// Self-attention of the tokens, tokens -> image cross-attention, MLP on the tokens,
// image -> tokens cross-attention.
class TwoWayAttentionBlockImpl : public torch::nn::Module {
 public:
  TwoWayAttentionBlockImpl(int64_t embedding_dim, int64_t num_heads, int64_t mlp_dim,
                           int64_t attention_downsample_rate, bool skip_first_layer_pe);
  // keys: BxHWxC image tokens, key_pe their positional encoding.
  ImageSide image_side(const at::Tensor& keys, const at::Tensor& key_pe);
  // queries: BxNxC tokens; returns the updated (queries, keys).
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& queries, const at::Tensor& query_pe,
                                            const ImageSide& image);

  Attention self_attn{nullptr};
  LayerNorm norm1{nullptr};
  Attention cross_attn_token_to_image{nullptr};
  LayerNorm norm2{nullptr};
  MLPBlock mlp{nullptr};
  LayerNorm norm3{nullptr};
  LayerNorm norm4{nullptr};
  Attention cross_attn_image_to_token{nullptr};

 private:
  bool skip_first_layer_pe_;
};
TORCH_MODULE(TwoWayAttentionBlock);

// SAM's two-way transformer between prompt tokens and the image embedding.
class TwoWayTransformerImpl : public torch::nn::Module {
 public:
  TwoWayTransformerImpl(int64_t depth, int64_t embedding_dim, int64_t num_heads, int64_t mlp_dim,
                        int64_t attention_downsample_rate = 2);
  // image_embedding: BxCxHxW; image_pe: BxCxHxW or 1xCxHxW (the same for every prompt);
  // point_embedding: BxNxC.
  // Returns (tokens BxNxC, image BxHWxC).
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& image_embedding,
                                            const at::Tensor& image_pe,
                                            const at::Tensor& point_embedding);
  // The first block's image side of image_embedding and image_pe, and forward from it.
  ImageSide image_side(const at::Tensor& image_embedding, const at::Tensor& image_pe);
  std::pair<at::Tensor, at::Tensor> forward(const ImageSide& image,
                                            const at::Tensor& point_embedding);

  torch::nn::ModuleList layers{nullptr};
  Attention final_attn_token_to_image{nullptr};
  LayerNorm norm_final_attn{nullptr};
};
TORCH_MODULE(TwoWayTransformer);

}  // namespace sd::models
