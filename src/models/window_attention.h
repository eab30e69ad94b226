#pragma once
#include <ATen/core/Tensor.h>

namespace sd::models {

// Whether fused_window_attention runs for these operands here: inference (no autograd), a CPU
// with AVX-512, fp32 or bf16 q, k and v of a head width that is a multiple of 16 and unit
// stride along it, an fp32 bias.
bool fused_window_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& bias);

// softmax(q kᵀ · scale + bias) v for B x heads x N x d views q, k and v (windows x heads of
// TinyViT's attention, read where the qkv projection left them) and a heads x N x N bias:
// a B x N x heads x d tensor of q's type, the layout the output projection reads. One window
// and head at a time stays in the core's cache: scores, softmax and the product with v in one
// pass, without the B x heads x N x N scores of the unfused path.
at::Tensor fused_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const at::Tensor& bias, double scale);

}  // namespace sd::models
