#pragma once
#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>

namespace sd::kernels {

// F.interpolate(x, size, mode="bilinear", align_corners=False) of an NCHW tensor, keeping only
// the top-left `keep` (rows, columns) of the result. Float CPU tensors outside autograd take a
// separable pass that skips what is cut off and gives ATen's numbers (same taps, same weights,
// same order of operations); anything else goes through ATen's upsample_bilinear2d.
using Size2 = std::array<int64_t, 2>;  // (rows, columns)
at::Tensor upsample_bilinear(const at::Tensor& x, Size2 size, Size2 keep);

}  // namespace sd::kernels
