#pragma once
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include <string>
#include <vector>

#include "models/common.h"
#include "onnx/graph.h"

// The ONNX nodes of the layers every model here is built from. Each function takes the graph,
// the module (its current weights become initializers) and the input value's name, and returns
// the output value's name; shapes are those the module's forward takes.
namespace sd::onnx {

// A learned weight as a node input: its constant, or in a graph of int8 weights int8 with one
// scale per index of `axis` (e.g. the output channels), back to float by Cast and Mul of
// constants that ONNX Runtime folds at load.
std::string weight(Graph& g, const at::Tensor& w, int64_t axis, const std::string& hint = "weight");
// x [..., in] -> [..., out]: MatMul by the transposed weight, Add the bias. In a graph of
// int8 weights: the weight int8 per output column, x quantised dynamically (uint8), an integer
// product (MatMulInteger), as ONNX Runtime's dynamic quantisation writes it.
std::string linear(Graph& g, torch::nn::LinearImpl& m, const std::string& x);
// torch.nn.LayerNorm over the last dimension (LayerNormalization).
std::string layer_norm(Graph& g, torch::nn::LayerNormImpl& m, const std::string& x);
// SAM's LayerNorm2d over the channels of NCHW: its mean, variance and affine as they are written.
std::string layer_norm_2d(Graph& g, models::LayerNorm2dImpl& m, const std::string& x);
// Exact GELU, x * 0.5 * (1 + erf(x / sqrt(2))): the pattern ONNX Runtime fuses into one Gelu
// (opset 17 has no Gelu).
std::string gelu(Graph& g, const std::string& x);
std::string relu(Graph& g, const std::string& x);
// Conv of `weight` (and `bias`, when defined) with torch's stride, padding and groups. In a
// graph of int8 weights the weight is int8 per output channel (weight()), fp32 inputs.
std::string conv(Graph& g, const std::string& x, const at::Tensor& weight, const at::Tensor& bias,
                 int64_t stride, int64_t pad, int64_t groups);
std::string conv2d(Graph& g, torch::nn::Conv2dImpl& m, const std::string& x);
// A bias-free Conv2d followed by a BatchNorm2d in eval mode: one Conv, the batch norm folded in.
std::string conv2d_bn(Graph& g, torch::nn::Conv2dImpl& c, const torch::nn::BatchNorm2dImpl& bn,
                      const std::string& x);
// torch's ConvTranspose2d (equal strides, paddings and output paddings): ConvTranspose. In a
// graph of int8 weights its weight (in x out x k x k) is int8 per output channel.
std::string conv_transpose2d(Graph& g, torch::nn::ConvTranspose2dImpl& m, const std::string& x);
// torch's max_pool2d with a square kernel (padding -inf, ceil_mode off): MaxPool.
std::string max_pool(Graph& g, const std::string& x, int64_t kernel, int64_t stride, int64_t pad);
// SAM's MLPBlock: lin1, GELU or ReLU, lin2.
std::string mlp_block(Graph& g, models::MLPBlockImpl& m, const std::string& x,
                      models::Activation act);
// The encoders' neck (models::make_neck): conv1x1, LayerNorm2d, conv3x3, LayerNorm2d. NCHW.
std::string neck(Graph& g, torch::nn::Sequential& m, const std::string& x);

// Shorthands for the shape operations.
std::string reshape(Graph& g, const std::string& x, const std::vector<int64_t>& shape);
std::string transpose(Graph& g, const std::string& x, const std::vector<int64_t>& perm);
std::string add(Graph& g, const std::string& a, const std::string& b);
std::string mul(Graph& g, const std::string& a, const std::string& b);
std::string matmul(Graph& g, const std::string& a, const std::string& b);
// x[..., starts:ends] along `axes`.
std::string slice(Graph& g, const std::string& x, const std::vector<int64_t>& starts,
                  const std::vector<int64_t>& ends, const std::vector<int64_t>& axes);

}  // namespace sd::onnx
