#pragma once
#include <ATen/core/Tensor.h>

namespace sd::kernels {

// The passes our training kernels (batch norm, depthwise 3x3 convolution) take over a 4-D tensor:
// rows of pixels when it is channels-last on a CPU with AVX-512, planes when it is contiguous
// NCHW on one with AVX2 and FMA, none otherwise.
enum class TrainLayout { none, rows, planes };
TrainLayout train_layout(const at::Tensor& x);

}  // namespace sd::kernels
