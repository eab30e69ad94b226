#pragma once
// The kernels here compute inference only: where autograd would record an operation on their
// operands they decline, and ATen's differentiable operations run instead.
#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>

namespace sd::kernels {

// Whether autograd would record an operation on these tensors (undefined ones ignored).
template <class... Tensors>
bool autograd_records(const Tensors&... tensors) {
  return at::GradMode::is_enabled() && ((tensors.defined() && tensors.requires_grad()) || ...);
}

}  // namespace sd::kernels
