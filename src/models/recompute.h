#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <functional>

namespace sd::models {

// `module`'s forward `fn(x)` without keeping its activations for backward (torch.utils
// .checkpoint): it runs under no-grad, and backward runs it again with autograd, under the same
// mixed precision, to get the gradients of x and of `module`'s parameters. Memory for time: the
// activations inside are freed after the forward and live again one module at a time during
// backward. `module`'s buffers (BatchNorm statistics) are put back after the second run, so they
// move once per step as without recomputation. `fn` must be deterministic (no dropout).
at::Tensor recompute_in_backward(torch::nn::Module& module,
                                 std::function<at::Tensor(const at::Tensor&)> fn,
                                 const at::Tensor& x);

}  // namespace sd::models
