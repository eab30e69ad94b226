#pragma once
#include <ATen/core/Tensor.h>

namespace sd::kernels {

// Whether pointwise_conv runs for these operands here: a contiguous NCHW fp32 CPU tensor, a
// contiguous fp32 C_out x C_in x 1 x 1 weight, stride 1, no padding, no groups. TinyViT trains
// NCHW where our channels-last batch norm does not run (CPUs without AVX-512).
bool pointwise_conv_applies(const at::Tensor& x, const at::Tensor& weight, int64_t stride,
                            int64_t padding, int64_t groups);

// conv2d(x, weight) of a 1 x 1 kernel without bias, as one autograd function: each sample's
// C_out x (H·W) output is one BLAS product of the weight and the sample's C_in x (H·W) planes, and
// backward two more a sample (x's gradient, and the weight's, summed over the samples). oneDNN's
// NCHW 1 x 1 convolution is slower on TinyViT's shapes, forward and backward (README).
at::Tensor pointwise_conv(const at::Tensor& x, const at::Tensor& weight);

}  // namespace sd::kernels
