#pragma once
#include <ATen/core/Tensor.h>

namespace sd::kernels {

// Whether depthwise_conv3x3 runs for these operands here: an fp32 N x C x H x W CPU tensor, a
// contiguous fp32 C x 1 x 3 x 3 weight (groups = C), stride 1, padding 1; x channels-last on a CPU
// with AVX-512, or contiguous NCHW on one with AVX2 and FMA.
bool depthwise_conv3x3_applies(const at::Tensor& x, const at::Tensor& weight, int64_t stride,
                               int64_t padding, int64_t groups);

// conv2d(x, weight, stride 1, padding 1, groups C) without bias, as one autograd function, in x's
// layout. Channels-last: each output row from three input rows in the core's cache, 16 channels
// at a time. Backward filters the output's gradient with the flipped kernel for x's gradient and
// sums the weight's gradient row by row (in float, the rows in double). oneDNN's channels-last
// backward is slower on TinyViT's stage-0 tensors, and its weight gradient is further from
// double. NCHW: a plane at a time (kernels/depthwise_conv_planes.h), faster than oneDNN's NCHW
// depthwise convolution forward and backward (README).
at::Tensor depthwise_conv3x3(const at::Tensor& x, const at::Tensor& weight);

}  // namespace sd::kernels
