#pragma once
#include <ATen/core/Tensor.h>

namespace sd::kernels {

// layer_norm over the last dimension of x (fp32, contiguous; inference) with fp32 weight and
// bias, the result rounded to bf16 in the same pass: what a bf16 product under autocast
// multiplies after a layer norm, without the fp32 tensor between them. Each row's mean and
// variance in fp32 over two passes, as LibTorch's kernel. Undefined where it does not run (a
// CPU without AVX-512, autograd, other types or layouts): the caller takes LibTorch's path.
at::Tensor layer_norm_to_bf16(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                              double eps);

}  // namespace sd::kernels
