#include "models/resnet.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/types.h>

#include <string>

#include "models/common.h"

namespace sd::models::resnet {
namespace {

using torch::nn::BatchNorm2d;
using torch::nn::Conv2d;
using torch::nn::Conv2dOptions;

Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
  return Conv2d(Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false));
}

// torchvision's initialisation: convolutions He-normal over their outputs, BatchNorm 1 and 0.
void init_weights(torch::nn::Module& backbone) {
  torch::NoGradGuard no_grad;
  for (const auto& m : backbone.modules(/*include_self=*/false)) {
    if (auto* c = m->as<torch::nn::Conv2dImpl>())
      torch::nn::init::kaiming_normal_(c->weight, 0, torch::kFanOut, torch::kReLU);
    else if (auto* bn = m->as<torch::nn::BatchNorm2dImpl>()) {
      bn->weight.fill_(1);
      bn->bias.zero_();
    }
  }
}

}  // namespace

BasicBlockImpl::BasicBlockImpl(int64_t in_planes, int64_t planes, int64_t stride) {
  conv1 = register_module("conv1", conv(in_planes, planes, 3, stride, 1));
  bn1 = register_module("bn1", BatchNorm2d(planes));
  conv2 = register_module("conv2", conv(planes, planes, 3, 1, 1));
  bn2 = register_module("bn2", BatchNorm2d(planes));
  if (stride != 1 || in_planes != planes)
    downsample = register_module(
        "downsample",
        torch::nn::Sequential(conv(in_planes, planes, 1, stride, 0), BatchNorm2d(planes)));
}

at::Tensor BasicBlockImpl::forward(const at::Tensor& x) {
  at::Tensor out = bn2(conv2(at::relu(bn1(conv1(x)))));
  return at::relu(out + (downsample ? downsample->forward(x) : x));
}

BackboneImpl::BackboneImpl(const std::vector<int>& blocks) {
  conv1 = register_module("conv1", conv(3, 64, 7, 2, 3));
  bn1 = register_module("bn1", BatchNorm2d(64));
  int64_t in_planes = 64;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const int64_t planes = int64_t{64} << i, stride = i == 0 ? 1 : 2;
    torch::nn::Sequential layer;
    for (int b = 0; b < blocks[i]; ++b) {
      layer->push_back(BasicBlock(in_planes, planes, b == 0 ? stride : 1));
      in_planes = planes;
    }
    layers.push_back(register_module("layer" + std::to_string(i + 1), layer));
  }
  init_weights(*this);
}

at::Tensor BackboneImpl::forward(const at::Tensor& input, Trace* trace) {
  at::Tensor x = at::max_pool2d(at::relu(bn1(conv1(input))), {3, 3}, {2, 2}, {1, 1});
  for (size_t i = 0; i < layers.size(); ++i) {
    x = layers[i]->forward(x);
    if (trace) trace->emplace_back("backbone.layer" + std::to_string(i + 1), x);
  }
  return x;
}

}  // namespace sd::models::resnet

namespace sd::models {

ResNetEncoder::ResNetEncoder(const ResNetConfig& c) {
  using torch::nn::Conv2d;
  using torch::nn::Conv2dOptions;
  const int64_t n = c.neck_channels, features = int64_t{64} << (c.layers.size() - 1);
  backbone = register_module("backbone", resnet::Backbone(c.layers));
  up_1 = register_module(
      "up_1",
      torch::nn::Sequential(
          Conv2d(Conv2dOptions(features, n, 3).padding(1)), GELU(),
          Conv2d(Conv2dOptions(n, n, 3).padding(1)), GELU(),
          Conv2d(Conv2dOptions(n, n, 3).padding(1)), GELU(),
          torch::nn::ConvTranspose2d(
              torch::nn::ConvTranspose2dOptions(n, n, 3).stride(2).padding(1).output_padding(1)),
          GELU()));
  proj = register_module("proj",
                         torch::nn::Sequential(Conv2d(Conv2dOptions(n, n, 3).padding(1)), GELU(),
                                               Conv2d(Conv2dOptions(n, c.out_chans, 1))));
  const int64_t grid = c.img_size / 16;
  pos_embedding =
      register_parameter("pos_embedding", 1e-5 * at::randn({1, c.out_chans, grid, grid}));
  // Channels-last convolutions (oneDNN's) take half the time of NCHW's on the CPU, in the
  // forward and the backward; loading and the optimiser keep the layout, saving makes NCHW.
  for (at::Tensor& p : parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
}

at::Tensor ResNetEncoder::forward(const at::Tensor& x, Trace* trace) {
  at::Tensor y =
      up_1->forward(backbone->forward(x.contiguous(at::MemoryFormat::ChannelsLast), trace));
  if (trace) trace->emplace_back("up_1", y);
  y = proj->forward(y);
  if (trace) trace->emplace_back("proj", y);
  return (y + pos_embedding).contiguous();
}

}  // namespace sd::models
