#pragma once
#include <ATen/core/Tensor.h>

namespace sd::kernels {

// A B x R x S tensor as a contiguous B x S x R tensor. For contiguous fp32 CPU tensors with AVX2,
// tiles of 128 rows x 16 columns, 8 x 8 blocks transposed in registers, in parallel over the
// tiles: 3-4x ATen's 2-D transposed copy on TinyViT's token grids, whose generic strided copy of
// the whole tensor is slower still. Elsewhere ATen's copy, one matrix at a time.
at::Tensor transposed_matrices(const at::Tensor& t);

}  // namespace sd::kernels
