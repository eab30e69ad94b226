#pragma once
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <functional>
#include <string>
#include <utility>

#include "models/common.h"
#include "models/image_encoder.h"

namespace sd::models {
// MobileSAM's TinyViT (vit_t and the 11M / 21M sizes).
struct TinyViTConfig {
  int img_size = 1024;
  int in_chans = 3;
  int num_classes = 1000;  // the unused classifier head, kept so checkpoints load strictly
  std::vector<int> embed_dims = {64, 128, 160, 320};
  std::vector<int> depths = {2, 2, 6, 2};
  std::vector<int> num_heads = {2, 4, 5, 10};
  std::vector<int> window_sizes = {7, 7, 14, 7};
  double mlp_ratio = 4.0;
  double mbconv_expand_ratio = 4.0;
  int local_conv_size = 3;
  int out_chans = 256;

  static const EncoderFamily& family();  // models/tiny_vit_family.cpp
  // Its keys, each with its member, default, check and help (the default agrees with the
  // member's initialiser).
  static const io::ConfigTable<TinyViTConfig>& table();
};

}  // namespace sd::models

// MobileSAM's TinyViT (mobile_sam/modeling/tiny_vit_sam.py). Convolutional stages are NCHW,
// attention stages B x L x C with L = H * W.
namespace sd::models::tiny_vit {

using Resolution = std::pair<int64_t, int64_t>;

// A BatchNorm's training-mode computation in place of torch's own (which normalises by this
// process's batch alone), e.g. over the batches of every process of a data-parallel run.
using BatchNormForward =
    std::function<at::Tensor(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x)>;

// Convolution without bias followed by BatchNorm. In eval mode the BatchNorm is folded into
// the convolution weights on every call (never cached, so it cannot go stale).
class Conv2d_BNImpl : public torch::nn::Module {
 public:
  Conv2d_BNImpl(int64_t a, int64_t b, int64_t ks = 1, int64_t stride = 1, int64_t pad = 0,
                int64_t groups = 1, double bn_weight_init = 1.0);
  at::Tensor forward(const at::Tensor& x);
  // GELU(forward(x)); in training one function with the BatchNorm (kernels/batch_norm.h).
  at::Tensor forward_gelu(const at::Tensor& x);

  // The training forward's convolution: c's, or kernels/depthwise_conv.h's or
  // kernels/pointwise_conv.h's where they apply.
  at::Tensor convolve(const at::Tensor& x);

  torch::nn::Conv2d c{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  int64_t stride, pad, groups;
  BatchNormForward train_bn;  // null: torch's
};
TORCH_MODULE(Conv2d_BN);

// Every Conv2d_BN of `model` trains with `forward` (null: torch's own); the weights and their
// keys stay. Returns how many there are.
int64_t set_batchnorm_forward(torch::nn::Module& model, const BatchNormForward& forward);

// Two stride-2 3x3 convolutions: Bx3xHxW -> Bx`embed_dim`x(H/4)x(W/4).
class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(int64_t in_chans, int64_t embed_dim);
  at::Tensor forward(const at::Tensor& x);

  torch::nn::Sequential seq{nullptr};  // Conv2d_BN, GELU, Conv2d_BN
};
TORCH_MODULE(PatchEmbed);

// Inverted residual: 1x1 expand, 3x3 depthwise, 1x1 project, plus the input. NCHW.
class MBConvImpl : public torch::nn::Module {
 public:
  MBConvImpl(int64_t in_chans, int64_t out_chans, double expand_ratio);
  at::Tensor forward(const at::Tensor& x);

  Conv2d_BN conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
};
TORCH_MODULE(MBConv);

// NCHW or B x L x C in, B x L' x `out_dim` out. Halves the grid except when `out_dim` is
// 320, 448 or 576 (MobileSAM keeps the last stage at the third stage's grid).
class PatchMergingImpl : public torch::nn::Module {
 public:
  PatchMergingImpl(Resolution input_resolution, int64_t dim, int64_t out_dim);
  at::Tensor forward(const at::Tensor& x);

  Conv2d_BN conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  Resolution input_resolution;
};
TORCH_MODULE(PatchMerging);

// LayerNorm -> fc1 -> GELU -> fc2.
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t in_features, int64_t hidden_features);
  at::Tensor forward(const at::Tensor& x);

  LayerNorm norm{nullptr};
  Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

// Windowed attention with a learned bias per head and per (|dy|, |dx|) offset. (B*nW) x N x C.
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t key_dim, int64_t num_heads, int64_t window_size);
  at::Tensor forward(const at::Tensor& x);

  // nn::Module::to(dtype) converts every buffer; the offset index stays int64, as under
  // Python's .to(dtype), which converts floating-point tensors only.
  using torch::nn::Module::to;
  void to(torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override;

  at::Tensor attention_biases;  // num_heads x number of offsets
  LayerNorm norm{nullptr};
  Linear qkv{nullptr}, proj{nullptr};
  // N x N offset index: a buffer (it moves with the module) but not state (persistent=False
  // in Python; io::is_persistent_buffer).
  at::Tensor attention_bias_idxs;
  int64_t num_heads;
  double scale;
};
TORCH_MODULE(Attention);

// Window attention + residual, depthwise local conv, MLP + residual. B x L x C.
class TinyViTBlockImpl : public torch::nn::Module {
 public:
  TinyViTBlockImpl(int64_t dim, Resolution input_resolution, int64_t num_heads, int64_t window_size,
                   double mlp_ratio, int64_t local_conv_size);
  at::Tensor forward(const at::Tensor& x);

  Attention attn{nullptr};
  Mlp mlp{nullptr};
  Conv2d_BN local_conv{nullptr};
  Resolution input_resolution;
  int64_t window_size;
};
TORCH_MODULE(TinyViTBlock);

// One stage: `blocks` (MBConv for ConvLayer, TinyViTBlock for BasicLayer), then an optional
// PatchMerging `downsample`. Records `<name>.blocks.M` in the trace.
class ConvLayerImpl : public torch::nn::Module {
 public:
  ConvLayerImpl(int64_t dim, Resolution input_resolution, int64_t depth, int64_t out_dim,
                bool downsample, double conv_expand_ratio);
  at::Tensor forward(const at::Tensor& x, Trace* trace, const std::string& name);

  torch::nn::ModuleList blocks{nullptr};
  PatchMerging downsample{nullptr};
  bool recompute = false;  // see TinyViT::recompute_stages
};
TORCH_MODULE(ConvLayer);

class BasicLayerImpl : public torch::nn::Module {
 public:
  BasicLayerImpl(int64_t dim, Resolution input_resolution, int64_t depth, int64_t num_heads,
                 int64_t window_size, double mlp_ratio, int64_t local_conv_size, int64_t out_dim,
                 bool downsample);
  at::Tensor forward(const at::Tensor& x, Trace* trace, const std::string& name);

  torch::nn::ModuleList blocks{nullptr};
  PatchMerging downsample{nullptr};
  bool recompute = false;  // see TinyViT::recompute_stages
};
TORCH_MODULE(BasicLayer);

}  // namespace sd::models::tiny_vit

namespace sd::models {

class TinyViT : public ImageEncoder {
 public:
  explicit TinyViT(const TinyViTConfig& config);
  at::Tensor forward(const at::Tensor& x, Trace* trace = nullptr) override;

  tiny_vit::PatchEmbed patch_embed{nullptr};
  torch::nn::ModuleList layers{nullptr};  // ConvLayer, then BasicLayers
  LayerNorm norm_head{nullptr};
  Linear head{nullptr};  // the unused classifier, when num_classes > 0
  torch::nn::Sequential neck{nullptr};
  tiny_vit::Resolution output_resolution;

  // Training with the first `stages` stages (the patch embedding with the first) recomputed in
  // backward, block by block, instead of keeping their activations (models/recompute.h). The
  // first stage works at a quarter of the input's size: the largest part of what training
  // keeps.
  bool recompute_stages(int64_t stages) override;

 private:
  void init_linear_weights();
  bool recompute_patch_embed_ = false;
};

}  // namespace sd::models
