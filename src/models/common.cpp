#include "models/common.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/conv.h>

#include "kernels/avx512_math.h"
#include "kernels/layer_norm.h"
#include "models/autocast.h"

namespace sd::models {

LayerNorm2dImpl::LayerNorm2dImpl(int64_t num_channels, double eps) : eps(eps) {
  weight = register_parameter("weight", at::ones({num_channels}));
  bias = register_parameter("bias", at::zeros({num_channels}));
}

at::Tensor LayerNormImpl::forward(const at::Tensor& input) {
  if (input.scalar_type() == weight.scalar_type()) return torch::nn::LayerNormImpl::forward(input);
  // bf16 or fp16 under autocast: normalised in fp32 (LibTorch 1.13's reduced-precision
  // layer_norm is far slower), returned in the input's type as PyTorch 2's mixed-type one.
  return torch::nn::LayerNormImpl::forward(input.to(weight.scalar_type())).to(input.scalar_type());
}

at::Tensor LayerNormImpl::forward_for_product(const at::Tensor& x) {
  if (!is_training() && x.device().is_cpu() && current_amp(c10::DeviceType::CPU) == Amp::bf16 &&
      options.normalized_shape().size() == 1) {
    at::Tensor y = kernels::layer_norm_to_bf16(x, weight, bias, options.eps());
    if (y.defined()) return y;
  }
  return forward(x);
}

// x [..., K] times weight [N, K] plus bias as a 1x1 convolution of the 1 x K x rows x 1
// channels-last image that x's memory already is; the output [1, N, rows, 1] comes back
// channels-last, so [..., N] is a view of it.
static at::Tensor linear_of_rows_as_image(const at::Tensor& x, const at::Tensor& weight,
                                          const at::Tensor& bias) {
  const int64_t features = x.size(-1), outputs = weight.size(0);
  const at::Tensor image = x.reshape({1, -1, 1, features}).permute({0, 3, 1, 2});
  const at::Tensor y = at::conv2d(image, weight.view({outputs, features, 1, 1}), bias);
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = outputs;
  return y.permute({0, 2, 3, 1}).reshape(shape);
}

static Amp cpu_amp(const at::Tensor& x) {
  return x.device().is_cpu() ? current_amp(c10::DeviceType::CPU) : Amp::off;
}

at::Tensor linear_of_rows(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                          bool training) {
  if (x.device().is_cpu() && cpu_amp(x) == Amp::off && x.scalar_type() == at::kFloat &&
      x.is_contiguous() && x.numel() > 0 && at::get_num_threads() > 1 &&
      (!training || kernels::avx512::cpu_has_avx512()))
    return linear_of_rows_as_image(x, weight, bias);
  return at::linear(x, weight, bias);
}

at::Tensor LinearImpl::forward(const at::Tensor& input) {
  return forward_fused(input, kernels::Epilogue::none);
}

at::ScalarType LinearImpl::onednn_type(const at::Tensor& x, Amp amp) const {
  // In eval mode only: recompute_stages reruns training forwards without autograd, which must
  // compute as the first run did.
  if (is_training() || (rows_as_image && amp == Amp::off) || amp == Amp::fp16)
    return at::ScalarType::Undefined;
  return amp == Amp::bf16 ? at::kBFloat16 : x.scalar_type();
}

at::Tensor LinearImpl::forward_fused(const at::Tensor& input, kernels::Epilogue act,
                                     const at::Tensor& residual) {
  const Amp amp = cpu_amp(input);
  const at::ScalarType type = onednn_type(input, amp);
  if (type != at::ScalarType::Undefined) {
    at::Tensor y = onednn_(input, weight, bias, type, act, residual);
    if (y.defined()) return y;
  }
  at::Tensor y = forward_unfused(input, amp);
  if (act == kernels::Epilogue::gelu) y = kernels::gelu_over(y);
  if (act == kernels::Epilogue::relu) y = at::relu(y);
  return residual.defined() ? residual + y : y;
}

at::Tensor LinearImpl::forward_in_blocks(const at::Tensor& x, kernels::Epilogue act,
                                         const at::Tensor& residual, kernels::Chunks chunks,
                                         bool into_residual) {
  const at::ScalarType type = onednn_type(x, cpu_amp(x));
  if (type == at::ScalarType::Undefined) return {};
  return onednn_(x, weight, bias, type, act, residual, chunks, into_residual);
}

int64_t LinearImpl::hidden_chunks(const at::Tensor& x) {
  const at::ScalarType type = onednn_type(x, cpu_amp(x));
  return type == at::ScalarType::Undefined
             ? 1
             : kernels::OnednnLinear::hidden_chunks(weight.size(0), type);
}

at::Tensor LinearImpl::forward_unfused(const at::Tensor& input, Amp amp) {
  if (amp == Amp::off)
    return rows_as_image ? linear_of_rows(input, weight, bias, is_training())
                         : torch::nn::LinearImpl::forward(input);
  const at::ScalarType type = amp == Amp::bf16 ? at::kBFloat16 : at::kHalf;
  // As rows: ATen's linear of more than two dimensions adds the bias after the product, in a
  // second pass over the output; of rows it adds it inside (addmm).
  auto out_sizes = input.sizes().vec();
  out_sizes.back() = weight.size(0);
  return at::linear(input.to(type).reshape({-1, input.size(-1)}), weight.to(type),
                    bias.defined() ? bias.to(type) : bias)
      .view(out_sizes);
}

at::Tensor LayerNorm2dImpl::forward(const at::Tensor& input) {
  const at::Tensor x = input.to(weight.scalar_type());  // as LayerNorm: statistics in fp32
  at::Tensor u = x.mean(1, /*keepdim=*/true);
  at::Tensor s = (x - u).pow(2).mean(1, /*keepdim=*/true);
  at::Tensor y = (x - u) / at::sqrt(s + eps);
  return weight.view({-1, 1, 1}) * y + bias.view({-1, 1, 1});
}

at::Tensor LayerNorm2dImpl::forward_channels_last(const at::Tensor& input) {
  return at::layer_norm(input.to(weight.scalar_type()), {weight.size(0)}, weight, bias, eps);
}

MLPBlockImpl::MLPBlockImpl(int64_t embedding_dim, int64_t mlp_dim, Activation act) : act_(act) {
  lin1 = register_module("lin1", Linear(embedding_dim, mlp_dim));
  lin2 = register_module("lin2", Linear(mlp_dim, embedding_dim));
}

at::Tensor MLPBlockImpl::forward(const at::Tensor& x) {
  return lin2->forward_fused(lin1->forward_fused(x, activation()), kernels::Epilogue::none);
}

kernels::Epilogue MLPBlockImpl::activation() const {
  return act_ == Activation::gelu ? kernels::Epilogue::gelu : kernels::Epilogue::relu;
}

at::Tensor MLPBlockImpl::forward_into(const at::Tensor& x, const at::Tensor& residual) {
  // A wide hidden layer in column blocks that lin2 sums the products of (kernels::Chunks).
  const int64_t chunks = lin1->hidden_chunks(x);
  if (chunks > 1) {
    const at::Tensor hidden = lin1->forward_in_blocks(x, activation(), {}, {1, chunks});
    if (hidden.defined()) {
      at::Tensor y =
          lin2->forward_in_blocks(hidden, kernels::Epilogue::none, residual, {chunks, 1}, true);
      if (y.defined()) return y;
    }
  }
  const at::Tensor hidden = lin1->forward_fused(x, activation());
  at::Tensor y = lin2->forward_in_blocks(hidden, kernels::Epilogue::none, residual, {}, true);
  return y.defined() ? y : lin2->forward_fused(hidden, kernels::Epilogue::none, residual);
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
