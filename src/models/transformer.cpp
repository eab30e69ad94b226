#include "models/transformer.h"

#include <ATen/ATen.h>

#include <cmath>

#include "kernels/batched_matmul.h"

namespace sd::models {
namespace {

LayerNorm layer_norm(int64_t dim) { return LayerNorm(torch::nn::LayerNormOptions({dim})); }

// BxNxC -> BxheadsxNx(C/heads)
at::Tensor separate_heads(const at::Tensor& x, int64_t num_heads) {
  return x.reshape({x.size(0), x.size(1), num_heads, x.size(2) / num_heads}).transpose(1, 2);
}

// BxheadsxNxc -> BxNx(heads*c)
at::Tensor recombine_heads(const at::Tensor& x) {
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}

// BxCxHxW -> BxHWxC, contiguous. One image at a time through a 2-D transpose, which ATen's
// copy blocks for the cache; the 3-D permuted copy is not blocked.
at::Tensor to_tokens(const at::Tensor& x) {
  at::Tensor tokens = x.flatten(2).transpose(1, 2);
  if (tokens.is_contiguous()) return tokens;
  at::Tensor out = at::empty({x.size(0), tokens.size(1), tokens.size(2)}, x.options());
  for (int64_t b = 0; b < x.size(0); ++b) out[b].copy_(tokens[b]);
  return out;
}

}  // namespace

AttentionImpl::AttentionImpl(int64_t embedding_dim, int64_t num_heads, int64_t downsample_rate)
    : num_heads_(num_heads) {
  int64_t internal_dim = embedding_dim / downsample_rate;
  TORCH_CHECK(internal_dim % num_heads == 0, "num_heads must divide embedding_dim.");
  q_proj = register_module("q_proj", Linear(embedding_dim, internal_dim));
  k_proj = register_module("k_proj", Linear(embedding_dim, internal_dim));
  v_proj = register_module("v_proj", Linear(embedding_dim, internal_dim));
  out_proj = register_module("out_proj", Linear(internal_dim, embedding_dim));
}

// The image's 4096 tokens by 128-256 features: oneDNN's 1x1 convolution multiplies them
// faster than the BLAS product (models/common.h). The prompts' few tokens stay rows (as an
// image of one row they took ATen's slow convolution).
void AttentionImpl::keys_from_image() { k_proj->rows_as_image = v_proj->rows_as_image = true; }
void AttentionImpl::queries_from_image() { q_proj->rows_as_image = out_proj->rows_as_image = true; }

// The heads' products in fp32 inference are one BLAS product per prompt and head, read where
// they lie (kernels/batched_matmul.h), instead of ATen's bmm with its per-matrix selects and
// copies (a few tokens against 4,096).
at::Tensor AttentionImpl::forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return attend(heads(q_proj, q), heads(k_proj, k), heads(v_proj, v));
}

at::Tensor AttentionImpl::heads(Linear& projection, const at::Tensor& x) const {
  return separate_heads(projection(x), num_heads_);
}

at::Tensor AttentionImpl::attend(const at::Tensor& qh, const at::Tensor& kh, const at::Tensor& vh) {
  const double scale = std::sqrt(static_cast<double>(qh.size(3)));
  // Dividing by a power of two (SAM's cross attention: 4) is exact, so the side with fewer
  // tokens can be divided instead of the scores, for the same numbers.
  const bool exact = std::exp2(std::round(std::log2(scale))) == scale;
  if (kh.size(2) < qh.size(2)) {
    // Few keys for many queries (image -> tokens): the scores transposed, Bxheadsx Nk x Nq,
    // so that softmax runs down columns ATen vectorises over the queries; along rows as short
    // as the keys (7) it barely vectorises.
    at::Tensor scores_t = exact ? kernels::batched_matmul(kh / scale, qh.transpose(-2, -1))
                                : kernels::batched_matmul(kh, qh.transpose(-2, -1)) / scale;
    at::Tensor attn_t = at::softmax(scores_t, -2);
    return out_proj(recombine_heads(kernels::batched_matmul(attn_t.transpose(-2, -1), vh)));
  }
  at::Tensor attn = exact && qh.size(2) < kh.size(2)  // Bxheadsx Nq x Nk
                        ? kernels::batched_matmul(qh / scale, kh.transpose(-2, -1))
                        : kernels::batched_matmul(qh, kh.transpose(-2, -1)) / scale;
  attn = at::softmax(attn, -1);
  return out_proj(recombine_heads(kernels::batched_matmul(attn, vh)));
}

TwoWayAttentionBlockImpl::TwoWayAttentionBlockImpl(int64_t embedding_dim, int64_t num_heads,
                                                   int64_t mlp_dim,
                                                   int64_t attention_downsample_rate,
                                                   bool skip_first_layer_pe)
    : skip_first_layer_pe_(skip_first_layer_pe) {
  self_attn = register_module("self_attn", Attention(embedding_dim, num_heads));
  norm1 = register_module("norm1", layer_norm(embedding_dim));
  cross_attn_token_to_image = register_module(
      "cross_attn_token_to_image", Attention(embedding_dim, num_heads, attention_downsample_rate));
  norm2 = register_module("norm2", layer_norm(embedding_dim));
  mlp = register_module("mlp", MLPBlock(embedding_dim, mlp_dim, Activation::relu));
  norm3 = register_module("norm3", layer_norm(embedding_dim));
  norm4 = register_module("norm4", layer_norm(embedding_dim));
  cross_attn_image_to_token = register_module(
      "cross_attn_image_to_token", Attention(embedding_dim, num_heads, attention_downsample_rate));
  cross_attn_token_to_image->keys_from_image();
  cross_attn_image_to_token->queries_from_image();
}

ImageSide TwoWayAttentionBlockImpl::image_side(const at::Tensor& keys, const at::Tensor& key_pe) {
  ImageSide image{keys, key_pe, keys + key_pe, {}, {}, {}};
  Attention& t2i = cross_attn_token_to_image;
  image.token_to_image_k = t2i->heads(t2i->k_proj, image.keys_and_pe);
  image.token_to_image_v = t2i->heads(t2i->v_proj, keys);
  Attention& i2t = cross_attn_image_to_token;
  image.image_to_token_q = i2t->heads(i2t->q_proj, image.keys_and_pe);
  return image;
}

std::pair<at::Tensor, at::Tensor> TwoWayAttentionBlockImpl::forward(const at::Tensor& queries_in,
                                                                    const at::Tensor& query_pe,
                                                                    const ImageSide& image) {
  at::Tensor queries = queries_in;
  if (skip_first_layer_pe_) {
    queries = self_attn(queries, queries, queries);
  } else {
    at::Tensor q = queries + query_pe;
    queries = queries + self_attn(q, q, queries);
  }
  queries = norm1(queries);

  Attention& t2i = cross_attn_token_to_image;
  at::Tensor q = queries + query_pe;
  queries = norm2(queries + t2i->attend(t2i->heads(t2i->q_proj, q), image.token_to_image_k,
                                        image.token_to_image_v));

  queries = norm3(queries + mlp(queries));

  Attention& i2t = cross_attn_image_to_token;
  q = queries + query_pe;
  at::Tensor keys =
      norm4(image.keys + i2t->attend(image.image_to_token_q, i2t->heads(i2t->k_proj, q),
                                     i2t->heads(i2t->v_proj, queries)));
  return {queries, keys};
}

TwoWayTransformerImpl::TwoWayTransformerImpl(int64_t depth, int64_t embedding_dim,
                                             int64_t num_heads, int64_t mlp_dim,
                                             int64_t attention_downsample_rate) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < depth; ++i)
    layers->push_back(TwoWayAttentionBlock(embedding_dim, num_heads, mlp_dim,
                                           attention_downsample_rate,
                                           /*skip_first_layer_pe=*/i == 0));
  final_attn_token_to_image = register_module(
      "final_attn_token_to_image", Attention(embedding_dim, num_heads, attention_downsample_rate));
  final_attn_token_to_image->keys_from_image();
  norm_final_attn = register_module("norm_final_attn", layer_norm(embedding_dim));
}

std::pair<at::Tensor, at::Tensor> TwoWayTransformerImpl::forward(
    const at::Tensor& image_embedding, const at::Tensor& image_pe,
    const at::Tensor& point_embedding) {
  return forward(image_side(image_embedding, image_pe), point_embedding);
}

ImageSide TwoWayTransformerImpl::image_side(const at::Tensor& image_embedding,
                                            const at::Tensor& image_pe) {
  return layers[0]->as<TwoWayAttentionBlock>()->image_side(to_tokens(image_embedding),
                                                           to_tokens(image_pe));
}

std::pair<at::Tensor, at::Tensor> TwoWayTransformerImpl::forward(
    const ImageSide& first, const at::Tensor& point_embedding) {
  at::Tensor queries = point_embedding, keys;
  for (size_t i = 0; i < layers->size(); ++i) {
    auto* layer = layers[i]->as<TwoWayAttentionBlock>();
    std::tie(queries, keys) = layer->forward(
        queries, point_embedding, i == 0 ? first : layer->image_side(keys, first.key_pe));
  }
  at::Tensor q = queries + point_embedding;
  at::Tensor k = keys + first.key_pe;
  queries = norm_final_attn(queries + final_attn_token_to_image(q, k, keys));
  return {queries, keys};
}

}  // namespace sd::models
