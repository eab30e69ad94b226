#pragma once
#include <ATen/core/Tensor.h>

namespace sd::kernels {

// Attention for the CPUs the fused kernels of kernels/window_attention.h do not run on (no
// AVX-512) where AVX2 and FMA do: SAM ViT's, with decomposed relative positions, and TinyViT's
// window attention, with a bias table. Applies to fp32 inference (no autograd), a head width that
// is a multiple of 8 with unit stride.
bool blocked_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// For B x heads x (h*w) x d views q, k and v of an h x w grid of tokens and get_rel_pos's rows
// rel_h (h x h x d) and rel_w (w x w x d): softmax(q kᵀ · scale + rel_h[th][kh] . q +
// rel_w[tw][kw] . q) v as a B x (h*w) x heads x d tensor (the layout the projection reads).
// Each head's keys and values are packed once; then a block of query rows at a time takes the
// keys a chunk at a time, as flash attention does: the chunk's scores by register tiles (AVX2
// products of 6 rows x 16 keys), the rel-pos terms and the softmax's running maximum and sum
// beside them, the product with the values added to the block's outputs, all in the core's
// cache. ATen's path makes the B x heads x N x N scores three times over (product, rel-pos sum,
// softmax): 805 MB each for a global block of ViT-B.
at::Tensor blocked_rel_pos_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const at::Tensor& rel_h, const at::Tensor& rel_w,
                                     double scale);

// TinyViT's window attention in the same way: softmax(q kᵀ · scale + bias[head]) v for
// B x heads x N x d views q, k and v and an fp32 heads x N x N bias, as B x N x heads x d.
at::Tensor blocked_biased_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& bias, double scale);

}  // namespace sd::kernels
