#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace sd::models {

// SAM's LayerNorm2d: normalises an NCHW tensor over its channels (eps 1e-6).
class LayerNorm2dImpl : public torch::nn::Module {
 public:
  explicit LayerNorm2dImpl(int64_t num_channels, double eps = 1e-6);
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight, bias;
  double eps;
};
TORCH_MODULE(LayerNorm2d);

enum class Activation { gelu, relu };

// SAM's MLPBlock: lin1 -> act -> lin2 (GELU in the ViT blocks, ReLU in the two-way transformer).
class MLPBlockImpl : public torch::nn::Module {
 public:
  MLPBlockImpl(int64_t embedding_dim, int64_t mlp_dim, Activation act = Activation::gelu);
  at::Tensor forward(const at::Tensor& x);

  torch::nn::Linear lin1{nullptr}, lin2{nullptr};

 private:
  Activation act_;
};
TORCH_MODULE(MLPBlock);

// The neck both image encoders end with (`neck.0..3`): conv1x1, LayerNorm2d, conv3x3,
// LayerNorm2d, all convolutions without bias. NCHW in, Bx`out_chans`xHxW out.
torch::nn::Sequential make_neck(int64_t in_chans, int64_t out_chans);

}  // namespace sd::models
