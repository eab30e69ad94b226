#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>

namespace sd::testing {

// The smallest trainable module: one parameter "w", `size` zeros.
struct OneWeight : torch::nn::Module {
  explicit OneWeight(int64_t size) { w = register_parameter("w", at::zeros({size})); }
  at::Tensor w;
};

}  // namespace sd::testing
