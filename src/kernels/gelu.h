#pragma once
#include <ATen/core/Tensor.h>

namespace sd::kernels {

// Exact (erf) GELU; a channels-last 4-d tensor goes through its NHWC view, because LibTorch
// 1.13's kernel is several times slower on channels-last strides than on contiguous values.
at::Tensor gelu(const at::Tensor& x);

}  // namespace sd::kernels
