#include "models/common.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/conv.h>

namespace sd::models {

LayerNorm2dImpl::LayerNorm2dImpl(int64_t num_channels, double eps) : eps(eps) {
  weight = register_parameter("weight", at::ones({num_channels}));
  bias = register_parameter("bias", at::zeros({num_channels}));
}

at::Tensor LayerNorm2dImpl::forward(const at::Tensor& x) {
  at::Tensor u = x.mean(1, /*keepdim=*/true);
  at::Tensor s = (x - u).pow(2).mean(1, /*keepdim=*/true);
  at::Tensor y = (x - u) / at::sqrt(s + eps);
  return weight.view({-1, 1, 1}) * y + bias.view({-1, 1, 1});
}

MLPBlockImpl::MLPBlockImpl(int64_t embedding_dim, int64_t mlp_dim, Activation act) : act_(act) {
  lin1 = register_module("lin1", torch::nn::Linear(embedding_dim, mlp_dim));
  lin2 = register_module("lin2", torch::nn::Linear(mlp_dim, embedding_dim));
}

at::Tensor MLPBlockImpl::forward(const at::Tensor& x) {
  at::Tensor h = lin1(x);
  return lin2(act_ == Activation::gelu ? at::gelu(h) : at::relu(h));
}

torch::nn::Sequential make_neck(int64_t in_chans, int64_t out_chans) {
  using torch::nn::Conv2d;
  using torch::nn::Conv2dOptions;
  return torch::nn::Sequential(
      Conv2d(Conv2dOptions(in_chans, out_chans, 1).bias(false)), LayerNorm2d(out_chans),
      Conv2d(Conv2dOptions(out_chans, out_chans, 3).padding(1).bias(false)),
      LayerNorm2d(out_chans));
}

}  // namespace sd::models
