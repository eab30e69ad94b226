#pragma once
#include <ATen/core/Tensor.h>

namespace sd::kernels {

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
// `probabilities`, when defined (B x heads x N x N fp32, contiguous; N <= 256), receives the
// softmax.
at::Tensor fused_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const at::Tensor& bias, double scale,
                                  const at::Tensor& probabilities = {});

// SAM ViT's attention with decomposed relative positions (MViTv2), inference: for B x heads x
// (h*w) x d views q, k and v of an h x w grid of tokens and get_rel_pos's rows rel_h (h x h x d)
// and rel_w (w x w x d), softmax(q kᵀ · scale + rel_h[th][kh] . q + rel_w[tw][kw] . q) v as
// B x N x heads x d in q's type (the layout the projection reads). The fused kernel above,
// its bias computed row by row from the two tables: neither the N x N scores nor the N x N
// bias exist, at 14 x 14 windows as at the 64 x 64 grid of the global blocks.
bool fused_rel_pos_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);
at::Tensor fused_rel_pos_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const at::Tensor& rel_h, const at::Tensor& rel_w, double scale);

// TinyViT's window attention, softmax(q kᵀ · scale + bias) v, for qkv B x N x heads x 3d (each
// head's q, k and v side by side, as the projection makes them) and an fp32 heads x N x N bias:
// B x N x heads x d (a view when autograd runs ATen's operations) in qkv's type.
// - fp32 `training` on the CPU: an autograd function, also without autograd (recompute_stages
//   runs it again with) so that both runs compute alike. Forward is the fused kernel where it
//   applies and keeps the softmax, as ATen's would; backward's products read their operands
//   where they lie and write one gradient of qkv, without the copies, the per-matrix dispatch
//   and the concatenation of ATen's matmul, split and softmax backward.
// - Inference (no autograd): the fused kernel where it applies, else (fp32 on CPUs with AVX2)
//   kernels/blocked_attention.h's, else one BLAS product per window and head
//   (kernels/batched_matmul.h).
// - Otherwise (bf16 training, CUDA, gradients in eval mode): ATen's operations.
at::Tensor window_attention(const at::Tensor& qkv, const at::Tensor& bias, double scale,
                            bool training);

}  // namespace sd::kernels
