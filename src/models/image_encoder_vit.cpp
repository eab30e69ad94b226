#include "models/image_encoder_vit.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "kernels/autograd.h"
#include "kernels/blocked_attention.h"
#include "kernels/window_attention.h"
#include "models/autocast.h"

namespace sd::models::vit {

PatchEmbedImpl::PatchEmbedImpl(int64_t patch_size, int64_t in_chans, int64_t embed_dim) {
  proj = register_module(
      "proj", torch::nn::Conv2d(
                  torch::nn::Conv2dOptions(in_chans, embed_dim, patch_size).stride(patch_size)));
}

// B x H x W x C, made contiguous here: the residual stream would otherwise keep the
// convolution's channels-first layout, and every layer norm would copy it.
at::Tensor PatchEmbedImpl::forward(const at::Tensor& x) {
  return proj(x).permute({0, 2, 3, 1}).contiguous();
}

namespace {

// Along one axis of n tokens: the windows wholly inside (from window 0) and the one cut by the
// end, each span as {first window, windows, tokens of each inside}.
struct Span {
  int64_t first, windows, tokens;
};
std::vector<Span> spans(int64_t n, int64_t window_size) {
  std::vector<Span> out;
  if (n / window_size > 0) out.push_back({0, n / window_size, window_size});
  if (n % window_size > 0) out.push_back({n / window_size, 1, n % window_size});
  return out;
}

// The padded grid cut into windows, B x nh x nw x ws x ws x C, seen as the grid: B x nh x ws x
// nw x ws x C.
at::Tensor as_grid(const at::Tensor& windows) { return windows.permute({0, 1, 3, 2, 4, 5}); }

// copy(in_windows, in_tokens) for each rectangle of the tokens (B x H x W x C) and where it lies
// in the windows: each direction is then one strided copy of every token. The views are made
// as they are used: autograd cannot follow an in-place copy into a view made before its base
// took a gradient from an earlier one.
template <typename Copy>
void for_each_token_part(const at::Tensor& windows, const at::Tensor& tokens, Copy copy) {
  const int64_t B = tokens.size(0), C = tokens.size(3), ws = windows.size(3);
  for (const Span& r : spans(tokens.size(1), ws))
    for (const Span& c : spans(tokens.size(2), ws))
      copy(as_grid(windows)
               .slice(1, r.first, r.first + r.windows)
               .slice(2, 0, r.tokens)
               .slice(3, c.first, c.first + c.windows)
               .slice(4, 0, c.tokens),
           tokens.slice(1, r.first * ws, r.first * ws + r.windows * r.tokens)
               .slice(2, c.first * ws, c.first * ws + c.windows * c.tokens)
               .view({B, r.windows, r.tokens, c.windows, c.tokens, C}));
}

}  // namespace

at::Tensor window_partition(const at::Tensor& x, int64_t window_size, const at::Tensor& padding) {
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t nh = (H + window_size - 1) / window_size, nw = (W + window_size - 1) / window_size;
  if (H % window_size == 0 && W % window_size == 0)
    return as_grid(x.view({B, nh, window_size, nw, window_size, C}))
        .contiguous()
        .view({-1, window_size, window_size, C});
  const at::Tensor windows = at::empty({B, nh, nw, window_size, window_size, C}, x.options());
  const at::Tensor fill =
      padding.defined() ? padding.to(x.scalar_type()) : at::zeros({C}, x.options());
  if (H % window_size > 0) as_grid(windows).slice(1, nh - 1).slice(2, H % window_size).copy_(fill);
  if (W % window_size > 0) as_grid(windows).slice(3, nw - 1).slice(4, W % window_size).copy_(fill);
  for_each_token_part(windows, x, [](at::Tensor in_windows, const at::Tensor& tokens) {
    in_windows.copy_(tokens);
  });
  return windows.view({-1, window_size, window_size, C});
}

at::Tensor window_unpartition(const at::Tensor& windows, int64_t window_size,
                              std::pair<int64_t, int64_t> padded_hw,
                              std::pair<int64_t, int64_t> hw) {
  auto [Hp, Wp] = padded_hw;
  auto [H, W] = hw;
  const int64_t nh = Hp / window_size, nw = Wp / window_size;
  const int64_t B = windows.size(0) / (nh * nw), C = windows.size(3);
  const at::Tensor grouped = windows.view({B, nh, nw, window_size, window_size, C});
  if (Hp == H && Wp == W) return as_grid(grouped).contiguous().view({B, H, W, C});
  const at::Tensor x = at::empty({B, H, W, C}, windows.options());
  for_each_token_part(grouped, x, [](const at::Tensor& in_windows, at::Tensor tokens) {
    tokens.copy_(in_windows);
  });
  return x;
}

at::Tensor resized_rel_pos(int64_t q_size, int64_t k_size, const at::Tensor& rel_pos) {
  const int64_t max_rel_dist = 2 * std::max(q_size, k_size) - 1;
  if (rel_pos.size(0) == max_rel_dist) return rel_pos;
  // F.interpolate(mode="linear"), align_corners False, over the rows of the table.
  at::Tensor table = rel_pos.reshape({1, rel_pos.size(0), -1}).permute({0, 2, 1});
  return at::upsample_linear1d(table, {max_rel_dist}, false)
      .reshape({-1, max_rel_dist})
      .permute({1, 0});
}

at::Tensor rel_pos_rows(int64_t q_size, int64_t k_size) {
  // Python scales integer coordinates by floats, then truncates; kept as is.
  double q_scale = std::max(double(k_size) / q_size, 1.0);
  double k_scale = std::max(double(q_size) / k_size, 1.0);
  at::Tensor q_coords = at::arange(q_size).unsqueeze(1) * q_scale;
  at::Tensor k_coords = at::arange(k_size).unsqueeze(0) * k_scale;
  at::Tensor relative = (q_coords - k_coords) + double(k_size - 1) * k_scale;
  return relative.to(at::kLong);
}

at::Tensor get_rel_pos(int64_t q_size, int64_t k_size, const at::Tensor& rel_pos) {
  const at::Tensor rows = rel_pos_rows(q_size, k_size).flatten().to(rel_pos.device());
  return resized_rel_pos(q_size, k_size, rel_pos).index_select(0, rows).view({q_size, k_size, -1});
}

// attn: B x (H*W) x (H*W); q: B x (H*W) x C. Adds q . Rh and q . Rw per axis.
static at::Tensor add_decomposed_rel_pos(const at::Tensor& attn, const at::Tensor& q,
                                         const at::Tensor& rel_pos_h, const at::Tensor& rel_pos_w,
                                         int64_t H, int64_t W) {
  at::Tensor Rh = get_rel_pos(H, H, rel_pos_h).permute({0, 2, 1});
  at::Tensor Rw = get_rel_pos(W, W, rel_pos_w).permute({0, 2, 1});
  int64_t B = q.size(0), dim = q.size(2);
  at::Tensor r_q = q.reshape({B, H, W, dim});
  at::Tensor rel_h = at::matmul(r_q, Rh);
  at::Tensor rel_w = at::matmul(r_q.permute({0, 2, 1, 3}), Rw).permute({0, 2, 1, 3});
  return (attn.view({B, H, W, H, W}) + rel_h.unsqueeze(4) + rel_w.unsqueeze(3))
      .view({B, H * W, H * W});
}

AttentionImpl::AttentionImpl(int64_t dim, int64_t num_heads, bool qkv_bias, bool use_rel_pos,
                             int64_t input_size)
    : num_heads(num_heads) {
  int64_t head_dim = dim / num_heads;
  scale = std::pow(double(head_dim), -0.5);
  qkv = register_module("qkv", Linear(torch::nn::LinearOptions(dim, dim * 3).bias(qkv_bias)));
  proj = register_module("proj", Linear(dim, dim));
  if (use_rel_pos) {
    rel_pos_h = register_parameter("rel_pos_h", at::zeros({2 * input_size - 1, head_dim}));
    rel_pos_w = register_parameter("rel_pos_w", at::zeros({2 * input_size - 1, head_dim}));
  }
}

at::Tensor AttentionImpl::forward(const at::Tensor& x) { return proj(heads(x)); }

at::Tensor AttentionImpl::heads(const at::Tensor& x) { return heads_of_qkv(qkv(x)); }

at::Tensor AttentionImpl::heads_of_qkv(const at::Tensor& projected) {
  int64_t B = projected.size(0), H = projected.size(1), W = projected.size(2);
  // q, k, v: B x heads x HW x head_dim views of the projection's B x HW x 3 x heads x head_dim.
  const at::Tensor all = projected.reshape({B, H * W, 3, num_heads, -1});
  const at::Tensor q4 = all.select(2, 0).transpose(1, 2), k4 = all.select(2, 1).transpose(1, 2),
                   v4 = all.select(2, 2).transpose(1, 2);
  if (rel_pos_h.defined() && kernels::fused_rel_pos_attention_applies(q4, k4, v4))
    return kernels::fused_rel_pos_attention(q4, k4, v4, get_rel_pos(H, H, rel_pos_h),
                                            get_rel_pos(W, W, rel_pos_w), scale)
        .view({B, H, W, -1});
  // Inference in bf16 on a CPU without the fused kernel (no AVX-512): its numbers, the scores,
  // rel-pos terms, softmax and product in fp32 from the bf16 q, k and v, the output rounded once
  // (autocast would round the scores to bf16 before the softmax: 1.5-2.6% from the attention
  // in double, where the fused kernel is within 1%).
  if (q4.scalar_type() == at::kBFloat16 && q4.device().is_cpu() &&
      !kernels::autograd_records(q4, k4, v4)) {
    Fp32Scope fp32;
    return unfused_heads(q4.to(at::kFloat), k4.to(at::kFloat), v4.to(at::kFloat), H, W)
        .to(at::kBFloat16);
  }
  return unfused_heads(q4, k4, v4, H, W);
}

at::Tensor AttentionImpl::unfused_heads(const at::Tensor& q4, const at::Tensor& k4,
                                        const at::Tensor& v4, int64_t H, int64_t W) {
  const int64_t B = q4.size(0);
  if (rel_pos_h.defined() && kernels::blocked_attention_applies(q4, k4, v4))
    return kernels::blocked_rel_pos_attention(q4, k4, v4, get_rel_pos(H, H, rel_pos_h),
                                              get_rel_pos(W, W, rel_pos_w), scale)
        .view({B, H, W, -1});
  // (B*heads) x HW x head_dim
  const at::Tensor q = q4.reshape({B * num_heads, H * W, -1}),
                   k = k4.reshape({B * num_heads, H * W, -1}),
                   v = v4.reshape({B * num_heads, H * W, -1});
  at::Tensor attn = at::matmul(q * scale, k.transpose(-2, -1));
  if (rel_pos_h.defined()) attn = add_decomposed_rel_pos(attn, q, rel_pos_h, rel_pos_w, H, W);
  attn = attn.softmax(-1);
  return at::matmul(attn, v)
      .view({B, num_heads, H, W, -1})
      .permute({0, 2, 3, 1, 4})
      .reshape({B, H, W, -1});
}

BlockImpl::BlockImpl(const ViTConfig& c, int64_t window_size) : window_size(window_size) {
  auto layer_norm = [&] { return LayerNorm(torch::nn::LayerNormOptions({c.embed_dim}).eps(1e-6)); };
  int64_t grid = c.img_size / c.patch_size;
  norm1 = register_module("norm1", layer_norm());
  attn = register_module("attn", Attention(c.embed_dim, c.num_heads, c.qkv_bias, c.use_rel_pos,
                                           window_size == 0 ? grid : window_size));
  norm2 = register_module("norm2", layer_norm());
  mlp = register_module("mlp", MLPBlock(c.embed_dim, int64_t(c.embed_dim * c.mlp_ratio)));
}

// Python pads the windows with zero tokens and projects them to q, k and v, which makes the
// padding's q, k and v the qkv bias: here qkv runs on the H x W tokens alone and the windows are
// padded with its bias (at 64 x 64 tokens in windows of 14, 4,096 rows where Python has 4,900).
// Python also projects the heads' outputs window by window and then undoes the windows; the
// projection is the same for every token, so here it runs after, on the H x W tokens without
// the windows' padding, with x added in its epilogue.
at::Tensor BlockImpl::forward(const at::Tensor& x) {
  at::Tensor y = norm1->forward_for_product(x);
  if (window_size > 0) {
    int64_t H = x.size(1), W = x.size(2);
    int64_t Hp = (H + window_size - 1) / window_size * window_size;
    int64_t Wp = (W + window_size - 1) / window_size * window_size;
    const at::Tensor windows = window_partition(attn->qkv(y), window_size, attn->qkv->bias);
    y = window_unpartition(attn->heads_of_qkv(windows), window_size, {Hp, Wp}, {H, W});
  } else {
    y = attn->heads(y);
  }
  y = attn->proj->forward_fused(y, kernels::Epilogue::none, x);
  return mlp->forward_into(norm2->forward_for_product(y), y);  // y: this block's own
}

}  // namespace sd::models::vit

namespace sd::models {

ImageEncoderViT::ImageEncoderViT(const ViTConfig& c) {
  int64_t grid = c.img_size / c.patch_size;
  patch_embed =
      register_module("patch_embed", vit::PatchEmbed(c.patch_size, c.in_chans, c.embed_dim));
  if (c.use_abs_pos)
    pos_embed = register_parameter("pos_embed", at::zeros({1, grid, grid, c.embed_dim}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int i = 0; i < c.depth; ++i) {
    bool global = std::count(c.global_attn_indexes.begin(), c.global_attn_indexes.end(), i) > 0;
    blocks->push_back(vit::Block(c, global ? 0 : c.window_size));
  }
  neck = register_module("neck", make_neck(c.embed_dim, c.out_chans));
}

at::Tensor ImageEncoderViT::forward(const at::Tensor& input, Trace* trace) {
  at::Tensor x = patch_embed(input);
  if (trace) trace->emplace_back("patch_embed", x);
  if (pos_embed.defined()) x = x + pos_embed;
  for (size_t i = 0; i < blocks->size(); ++i) {
    x = blocks->at<vit::BlockImpl>(i).forward(x);
    if (trace) trace->emplace_back("blocks." + std::to_string(i), x);
  }
  x = neck->forward(x.permute({0, 3, 1, 2}));
  if (trace) trace->emplace_back("neck", x);
  return x;
}

}  // namespace sd::models
