// TinyViT (models/tiny_vit.h) as ONNX nodes, one function per module. Batch 1, every shape
// static. Batch norms are folded into their convolutions and each attention's bias table is
// gathered into its heads x N x N constant here, so the graph holds the inference model only.
#include "models/tiny_vit.h"

#include <ATen/ATen.h>

#include "onnx/layers.h"
#include "onnx/sam.h"

namespace sd::onnx {
namespace {

using namespace models::tiny_vit;

std::string conv2d_bn(Graph& g, Conv2d_BNImpl& m, const std::string& x, const std::string& name) {
  Graph::Scope s(g, name);
  return onnx::conv2d_bn(g, *m.c, *m.bn, x);
}

std::string patch_embed(Graph& g, PatchEmbedImpl& m, const std::string& x) {
  Graph::Scope s(g, "patch_embed.seq");
  const std::string y = gelu(g, conv2d_bn(g, *m.seq->ptr<Conv2d_BNImpl>(0), x, "0"));
  return conv2d_bn(g, *m.seq->ptr<Conv2d_BNImpl>(2), y, "2");
}

std::string mbconv(Graph& g, MBConvImpl& m, const std::string& x) {
  std::string y = gelu(g, conv2d_bn(g, *m.conv1, x, "conv1"));
  y = gelu(g, conv2d_bn(g, *m.conv2, y, "conv2"));
  return gelu(g, add(g, conv2d_bn(g, *m.conv3, y, "conv3"), x));
}

// 1 x L x C tokens of an h x w grid <-> 1 x C x h x w.
std::string tokens_to_nchw(Graph& g, const std::string& x, int64_t h, int64_t w, int64_t c) {
  return transpose(g, reshape(g, x, {1, h, w, c}), {0, 3, 1, 2});
}
std::string nchw_to_tokens(Graph& g, const std::string& x, int64_t c) {
  return transpose(g, reshape(g, x, {1, c, -1}), {0, 2, 1});
}

// `tokens`: the input is 1 x L x C (attention stages), else NCHW (after the conv stage).
std::string patch_merging(Graph& g, PatchMergingImpl& m, const std::string& x, int64_t in_dim,
                          bool tokens) {
  Graph::Scope s(g, "downsample");
  auto [h, w] = m.input_resolution;
  std::string y = tokens ? tokens_to_nchw(g, x, h, w, in_dim) : x;
  y = gelu(g, conv2d_bn(g, *m.conv1, y, "conv1"));
  y = gelu(g, conv2d_bn(g, *m.conv2, y, "conv2"));
  return nchw_to_tokens(g, conv2d_bn(g, *m.conv3, y, "conv3"), m.conv3->c->weight.size(0));
}

std::string mlp(Graph& g, MlpImpl& m, const std::string& x) {
  Graph::Scope s(g, "mlp");
  std::string y;
  {
    Graph::Scope n(g, "norm");
    y = layer_norm(g, *m.norm, x);
  }
  {
    Graph::Scope n(g, "fc1");
    y = gelu(g, linear(g, *m.fc1, y));
  }
  Graph::Scope n(g, "fc2");
  return linear(g, *m.fc2, y);
}

// The heads x N x N bias of every (query, key) pair: gathered from the table by the offset index
// now, or, in a graph of int8 weights (whose size matters), the compact heads x offsets table
// and a Gather by the int32 index, which the blocks of one window size share (ONNX Runtime
// folds the Gather when it loads the model).
std::string attention_biases(Graph& g, AttentionImpl& m, int64_t heads, int64_t n) {
  if (!g.int8_weights())
    return g.constant(
        m.attention_biases.index_select(1, m.attention_bias_idxs.flatten()).view({heads, n, n}),
        "attention_biases");
  const std::string table = g.constant(m.attention_biases, "attention_biases");
  const std::string index =
      g.constant(m.attention_bias_idxs.to(at::kInt).view({n, n}), "attention_bias_idxs");
  return g.op("Gather", {table, index}, {{"axis", int64_t(1)}});
}

// Windows x N x C -> windows x N x C.
std::string attention(Graph& g, AttentionImpl& m, const std::string& x, int64_t windows,
                      int64_t n) {
  Graph::Scope s(g, "attn");
  std::string y;
  {
    Graph::Scope l(g, "norm");
    y = layer_norm(g, *m.norm, x);
  }
  {
    Graph::Scope l(g, "qkv");
    y = linear(g, *m.qkv, y);
  }
  const int64_t heads = m.num_heads, key_dim = m.qkv->weight.size(0) / heads / 3;
  const std::vector<std::string> qkv =
      g.node("Split",
             {reshape(g, y, {windows, n, heads, 3 * key_dim}), g.ints({key_dim, key_dim, key_dim})},
             {{"axis", int64_t(3)}}, 3);
  const std::string q = transpose(g, qkv[0], {0, 2, 1, 3});
  const std::string k = transpose(g, qkv[1], {0, 2, 3, 1});
  const std::string v = transpose(g, qkv[2], {0, 2, 1, 3});
  std::string attn = mul(g, matmul(g, q, k), g.scalar(float(m.scale)));
  attn = g.op("Softmax", {add(g, attn, attention_biases(g, m, heads, n))}, {{"axis", int64_t(-1)}});
  y = reshape(g, transpose(g, matmul(g, attn, v), {0, 2, 1, 3}), {windows, n, heads * key_dim});
  Graph::Scope l(g, "proj");
  return linear(g, *m.proj, y);
}

std::string tiny_vit_block(Graph& g, TinyViTBlockImpl& m, const std::string& x, int64_t c) {
  auto [h, w] = m.input_resolution;
  const int64_t ws = m.window_size;
  std::string y;
  if (h == ws && w == ws) {
    y = attention(g, *m.attn, x, 1, h * w);
  } else {
    const int64_t pad_b = (ws - h % ws) % ws, pad_r = (ws - w % ws) % ws;
    const int64_t ph = h + pad_b, pw = w + pad_r, nh = ph / ws, nw = pw / ws;
    y = reshape(g, x, {1, h, w, c});
    if (pad_b > 0 || pad_r > 0)
      y = g.op("Pad", {y, g.ints({0, 0, 0, 0, 0, pad_b, pad_r, 0})},
               {{"mode", std::string("constant")}});
    // window partition: (nh * nw) x (ws * ws) x C
    y = transpose(g, reshape(g, y, {1, nh, ws, nw, ws, c}), {0, 1, 3, 2, 4, 5});
    y = attention(g, *m.attn, reshape(g, y, {nh * nw, ws * ws, c}), nh * nw, ws * ws);
    // window reverse
    y = transpose(g, reshape(g, y, {1, nh, nw, ws, ws, c}), {0, 1, 3, 2, 4, 5});
    y = reshape(g, y, {1, ph, pw, c});
    if (pad_b > 0 || pad_r > 0) y = slice(g, y, {0, 0}, {h, w}, {1, 2});
    y = reshape(g, y, {1, h * w, c});
  }
  y = add(g, x, y);
  y = nchw_to_tokens(g, conv2d_bn(g, *m.local_conv, tokens_to_nchw(g, y, h, w, c), "local_conv"),
                     c);
  return add(g, y, mlp(g, *m.mlp, y));
}

}  // namespace

std::string tiny_vit(Graph& g, models::TinyViT& m, const models::EncoderConfig&,
                     const std::string& x) {
  std::string y = patch_embed(g, *m.patch_embed, x);
  for (size_t i = 0; i < m.layers->size(); ++i) {
    Graph::Scope layer(g, "layers." + std::to_string(i));
    if (i == 0) {
      auto& stage = m.layers->at<ConvLayerImpl>(0);
      for (size_t b = 0; b < stage.blocks->size(); ++b) {
        Graph::Scope block(g, "blocks." + std::to_string(b));
        y = mbconv(g, stage.blocks->at<MBConvImpl>(b), y);
      }
      const int64_t dim = stage.blocks->at<MBConvImpl>(0).conv3->c->weight.size(0);
      if (!stage.downsample.is_empty()) y = patch_merging(g, *stage.downsample, y, dim, false);
      continue;
    }
    auto& stage = m.layers->at<BasicLayerImpl>(i);
    const int64_t dim = stage.blocks->at<TinyViTBlockImpl>(0).attn->proj->weight.size(0);
    for (size_t b = 0; b < stage.blocks->size(); ++b) {
      Graph::Scope block(g, "blocks." + std::to_string(b));
      y = tiny_vit_block(g, stage.blocks->at<TinyViTBlockImpl>(b), y, dim);
    }
    if (!stage.downsample.is_empty()) y = patch_merging(g, *stage.downsample, y, dim, true);
  }
  auto [h, w] = m.output_resolution;
  const int64_t last = m.norm_head->weight.size(0);
  return neck(g, m.neck, tokens_to_nchw(g, y, h, w, last));
}

}  // namespace sd::onnx
