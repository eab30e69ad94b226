#pragma once
#include <ATen/core/Tensor.h>

namespace sd::kernels {

// out[i, j] = a[i, j] . b[i, j] for 4-D B x H x M x K and B x H x K x N float CPU tensors,
// written into `out` (B x H x M x N, any strides with a unit one on a side), one BLAS product
// per matrix, spread over the threads. Strided operands are read where they lie: TinyViT's
// q, k and v are views into the qkv projection, and its output goes straight into the
// B x N x heads x C layout the projection reads. ATen's bmm copies such operands contiguous
// first and then runs its many small products one after another, each threaded on its own.
// A batch of 1 on either side broadcasts against the other's (read where it lies, not expanded
// into copies as ATen's matmul does). Other tensors (autograd, other types, no unit stride,
// other broadcasts) go through at::matmul.
void batched_matmul_into(const at::Tensor& a, const at::Tensor& b, at::Tensor out);

// The same products into a new B x H x M x N tensor; at::matmul itself (differentiable,
// broadcasting) where they do not apply.
at::Tensor batched_matmul(const at::Tensor& a, const at::Tensor& b);

}  // namespace sd::kernels
