#pragma once
#include <ATen/core/Tensor.h>

namespace sd::kernels {

// Whether mask_products runs here: fp32 contiguous CPU tensors that autograd does not record,
// image B x P x C and hyper B x M x C with C a multiple of 8, on a CPU with AVX2 and FMA.
bool mask_products_apply(const at::Tensor& image, const at::Tensor& hyper);

// masks[b][m][p] = sum over c of image[b][p][c] * hyper[b][m][c], as B x M x P: the mask
// decoder's product of its upscaled image (P = 256 x 256 pixels of C = 32 features) with the
// hypernetworks' outputs (M masks). A BLAS product of these shapes (one side 1-4 wide) runs at
// 10-14 GFLOP/s on the AMD EPYC Zen 3; here each pixel's features are read once, from the cache,
// for all M masks, and the output comes out in the masks' own layout.
at::Tensor mask_products(const at::Tensor& image, const at::Tensor& hyper);

}  // namespace sd::kernels
