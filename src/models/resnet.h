#pragma once
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include <vector>

#include "models/image_encoder.h"

namespace sd::models {

// NanoSAM's resnet18 (the default) and resnet34.
class EncoderFamily;

struct ResNetConfig {
  static const EncoderFamily& family();  // models/resnet_family.cpp
  // Its keys, each with its member, default, check and help (the default agrees with the
  // member's initialiser).
  static const io::ConfigTable<ResNetConfig>& table();
  int img_size = 1024;
  std::vector<int> layers = {2, 2, 2, 2};  // basic blocks per stage; resnet34: {3, 4, 6, 3}
  int neck_channels = 256;
  int out_chans = 256;
};

}  // namespace sd::models

// NanoSAM's student (NVIDIA-AI-IOT/nanosam, nanosam/models/timm_image_encoder.py): a
// torchvision/timm ResNet with basic blocks as backbone, its stride-32 features brought to
// SAM's 256 x 64 x 64 embedding by a neck of convolutions, plus a learned position embedding.
namespace sd::models::resnet {

// conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the input (through `downsample`, a 1x1
// convolution and BN, where the block changes the stride or the width), -> ReLU.
class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(int64_t in_planes, int64_t planes, int64_t stride);
  at::Tensor forward(const at::Tensor& x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

// torchvision's ResNet up to its last stage (no pooling, no classifier), with its parameter
// names: conv1 (7x7, stride 2), bn1, ReLU, 3x3 max pool (stride 2), then layer1..layer4 of
// `blocks[i]` basic blocks at 64, 128, 256, 512 channels (strides 1, 2, 2, 2).
// Bx3xHxW -> Bx512x(H/32)x(W/32); records `backbone.layerN` in the trace.
class BackboneImpl : public torch::nn::Module {
 public:
  explicit BackboneImpl(const std::vector<int>& blocks);
  at::Tensor forward(const at::Tensor& x, Trace* trace);

  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  std::vector<torch::nn::Sequential> layers;  // registered as layer1..layer4
};
TORCH_MODULE(Backbone);

}  // namespace sd::models::resnet

namespace sd::models {

// NanoSAM's TimmImageEncoder: backbone, then `up_1` (three 3x3 convolutions with GELU, a
// stride-2 3x3 transposed convolution with GELU: twice the grid), `proj` (3x3 convolution,
// GELU, 1x1 convolution to `out_chans`), plus `pos_embedding` (1 x out_chans x H/16 x W/16).
// Bx3xHxW -> Bx`out_chans`x(H/16)x(W/16), H and W the config's img_size. Records
// `backbone.layer1..4`, `up_1` and `proj` in the trace.
class ResNetEncoder : public ImageEncoder {
 public:
  explicit ResNetEncoder(const ResNetConfig& config);
  at::Tensor forward(const at::Tensor& x, Trace* trace = nullptr) override;

  resnet::Backbone backbone{nullptr};
  torch::nn::Sequential up_1{nullptr}, proj{nullptr};
  at::Tensor pos_embedding;
};

}  // namespace sd::models
