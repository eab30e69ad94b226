#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "kernels/gelu.h"
#include "kernels/onednn_linear.h"
#include "models/autocast.h"

namespace sd::models {

// SAM's LayerNorm2d: normalises an NCHW tensor over its channels (eps 1e-6).
class LayerNorm2dImpl : public torch::nn::Module {
 public:
  explicit LayerNorm2dImpl(int64_t num_channels, double eps = 1e-6);
  at::Tensor forward(const at::Tensor& x);
  // The same normalisation of a channels-last B x H x W x C tensor (over its last dimension).
  at::Tensor forward_channels_last(const at::Tensor& x);

  at::Tensor weight, bias;
  double eps;
};
TORCH_MODULE(LayerNorm2d);

// torch.nn.LayerNorm (same keys, same numbers) that also takes bf16/fp16 input next to fp32
// weights (autocast), which LibTorch 1.13's layer_norm refuses: the output keeps the input's
// type.
class LayerNormImpl : public torch::nn::LayerNormImpl {
 public:
  using torch::nn::LayerNormImpl::LayerNormImpl;
  at::Tensor forward(const at::Tensor& x);
  // What a Linear after it multiplies: under CPU bf16 autocast the normalised values rounded
  // to bf16 in the same pass (kernels/layer_norm.h; in eval mode), else forward(x).
  at::Tensor forward_for_product(const at::Tensor& x);
};
TORCH_MODULE(LayerNorm);

// torch.nn.Linear (same keys, same numbers in fp32) whose bias joins the product in the
// product's type under CPU autocast: LibTorch 1.13 multiplies in bf16 and then adds the fp32
// bias by converting the whole product to fp32 and back (a fifth of a bf16 inference).
class LinearImpl : public torch::nn::LinearImpl {
 public:
  using torch::nn::LinearImpl::LinearImpl;
  at::Tensor forward(const at::Tensor& x);
  // act(forward(x)), plus `residual` where defined (fp32, x's rows by the outputs); in
  // eval mode without autograd on the CPU both in the product's epilogue
  // (kernels/onednn_linear.h).
  at::Tensor forward_fused(const at::Tensor& x, kernels::Epilogue act,
                           const at::Tensor& residual = {});
  // forward_fused's oneDNN product alone, x or the output in column blocks (kernels::Chunks),
  // the sum written into `residual` where into_residual: undefined where it does not run.
  at::Tensor forward_in_blocks(const at::Tensor& x, kernels::Epilogue act,
                               const at::Tensor& residual, kernels::Chunks chunks,
                               bool into_residual = false);
  // The column blocks this Linear's output is best written in for a Linear that reads it
  // (kernels::OnednnLinear::hidden_chunks): 1 where forward_in_blocks would not run.
  int64_t hidden_chunks(const at::Tensor& x);
  // The product in fp32 as linear_of_rows: faster than the BLAS product on TinyViT's
  // thousands of rows by 128-640 features, forward and backward on AVX-512 CPUs (the README
  // gives the figure); equal on SAM's ViT-H shapes and on one thread. TinyViT turns it on for
  // its Linears, the two-way transformer for its projections of the image's tokens.
  bool rows_as_image = false;

 private:
  // The type oneDNN's product runs in under `amp` (CPU autocast's), or Undefined where
  // LibTorch's operations run.
  at::ScalarType onednn_type(const at::Tensor& x, Amp amp) const;
  // LibTorch's operations, under the mixed precision forward_fused found.
  at::Tensor forward_unfused(const at::Tensor& x, Amp amp);
  kernels::OnednnLinear onednn_;
};
TORCH_MODULE(Linear);

// x [..., K] times weight [N, K] plus bias (fp32 on the CPU, more than one thread, no autocast) as
// oneDNN's 1x1 convolution of the rows seen as a channels-last image: faster than the BLAS
// product on thousands of rows by 64-640 features. Without AVX-512 (AMD EPYC Zen 3) its backward
// took 4-5x its forward, so there `training` keeps the BLAS product; elsewhere at::linear.
at::Tensor linear_of_rows(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                          bool training);

// torch.nn.GELU over kernels::gelu, for Sequentials that number their modules as Python's.
class GELUImpl : public torch::nn::Module {
 public:
  at::Tensor forward(const at::Tensor& x) { return kernels::gelu(x); }
};
TORCH_MODULE(GELU);

enum class Activation { gelu, relu };

// SAM's MLPBlock: lin1 -> act -> lin2 (GELU in the ViT blocks, ReLU in the two-way transformer).
class MLPBlockImpl : public torch::nn::Module {
 public:
  MLPBlockImpl(int64_t embedding_dim, int64_t mlp_dim, Activation act = Activation::gelu);
  at::Tensor forward(const at::Tensor& x);
  // residual + forward(x), the sum in the last product's epilogue (Linear::forward_fused) and,
  // in inference where oneDNN runs it, written into `residual` itself: the caller hands over a
  // residual it reads no more.
  at::Tensor forward_into(const at::Tensor& x, const at::Tensor& residual);

  Linear lin1{nullptr}, lin2{nullptr};

 private:
  kernels::Epilogue activation() const;
  Activation act_;
};
TORCH_MODULE(MLPBlock);

// The neck both image encoders end with (`neck.0..3`): conv1x1, LayerNorm2d, conv3x3,
// LayerNorm2d, all convolutions without bias. NCHW in, Bx`out_chans`xHxW out.
torch::nn::Sequential make_neck(int64_t in_chans, int64_t out_chans);

}  // namespace sd::models
