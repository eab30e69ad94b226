#pragma once
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "models/common.h"
#include "models/image_encoder.h"

namespace sd::models {
// SAM's ImageEncoderViT (vit_h / vit_l / vit_b and any other size).
struct ViTConfig {
  int img_size = 1024;
  int patch_size = 16;
  int in_chans = 3;
  int embed_dim = 768;
  int depth = 12;
  int num_heads = 12;
  double mlp_ratio = 4.0;
  int out_chans = 256;
  bool qkv_bias = true;
  bool use_abs_pos = true;
  bool use_rel_pos = true;
  int window_size = 14;
  std::vector<int> global_attn_indexes = {2, 5, 8, 11};

  static const EncoderFamily& family();  // models/vit_family.cpp
  // Its keys, each with its member, default, check and help (the default agrees with the
  // member's initialiser).
  static const io::ConfigTable<ViTConfig>& table();
};

}  // namespace sd::models

// SAM's ImageEncoderViT (segment_anything/modeling/image_encoder.py). Tokens are BxHxWxC.
namespace sd::models::vit {

// Non-overlapping 16x16 patches: Bx3xHxW -> Bx(H/16)x(W/16)xC.
class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(int64_t patch_size, int64_t in_chans, int64_t embed_dim);
  at::Tensor forward(const at::Tensor& x);

  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

// Multi-head attention with decomposed relative position embeddings (MViTv2).
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t num_heads, bool qkv_bias, bool use_rel_pos,
                int64_t input_size);
  at::Tensor forward(const at::Tensor& x);  // BxHxWxC -> BxHxWxC: proj(heads(x))
  // The heads' outputs side by side, before the projection (BxHxWxC): heads_of_qkv(qkv(x)).
  at::Tensor heads(const at::Tensor& x);
  // The same from qkv's output (BxHxWx3C).
  at::Tensor heads_of_qkv(const at::Tensor& projected);

  Linear qkv{nullptr}, proj{nullptr};
  at::Tensor rel_pos_h, rel_pos_w;  // (2 * input_size - 1) x head_dim, when use_rel_pos
  int64_t num_heads;
  double scale;

 private:
  // Without the fused kernel: kernels/blocked_attention.h where it applies, else ATen's
  // operations on q, k, v (B x heads x HW x head_dim), as Python runs them.
  at::Tensor unfused_heads(const at::Tensor& q4, const at::Tensor& k4, const at::Tensor& v4,
                           int64_t H, int64_t W);
};
TORCH_MODULE(Attention);

// Pre-norm transformer block; window attention when window_size > 0, else global.
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const ViTConfig& config, int64_t window_size);
  at::Tensor forward(const at::Tensor& x);

  LayerNorm norm1{nullptr}, norm2{nullptr};
  Attention attn{nullptr};
  MLPBlock mlp{nullptr};
  int64_t window_size;
};
TORCH_MODULE(Block);

// Exposed for tests: BxHxWxC -> (B*nWindows)xWSxWSxC, padding H and W up to a multiple of
// `window_size` with tokens of zeros or, where defined, of `padding` (C values); and the
// inverse, cropping back to `hw`.
at::Tensor window_partition(const at::Tensor& x, int64_t window_size,
                            const at::Tensor& padding = {});
at::Tensor window_unpartition(const at::Tensor& windows, int64_t window_size,
                              std::pair<int64_t, int64_t> padded_hw,
                              std::pair<int64_t, int64_t> hw);
// The rel-pos rows for every (query, key) pair: q_size x k_size x C, resizing the table
// linearly when it does not have 2 * max(q_size, k_size) - 1 rows. Its two steps:
// rel_pos_rows(q, k) of resized_rel_pos(q, k, rel_pos).
at::Tensor get_rel_pos(int64_t q_size, int64_t k_size, const at::Tensor& rel_pos);
// The table with 2 * max(q_size, k_size) - 1 rows (F.interpolate's linear resize when needed).
at::Tensor resized_rel_pos(int64_t q_size, int64_t k_size, const at::Tensor& rel_pos);
// The row of the resized table that each (query, key) pair reads: q_size x k_size, int64.
at::Tensor rel_pos_rows(int64_t q_size, int64_t k_size);

}  // namespace sd::models::vit

namespace sd::models {

class ImageEncoderViT : public ImageEncoder {
 public:
  explicit ImageEncoderViT(const ViTConfig& config);
  at::Tensor forward(const at::Tensor& x, Trace* trace = nullptr) override;

  at::Tensor pos_embed;  // 1 x (img/patch) x (img/patch) x C, when use_abs_pos
  vit::PatchEmbed patch_embed{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::Sequential neck{nullptr};
};

}  // namespace sd::models
