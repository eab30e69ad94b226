// SAM's ImageEncoderViT (models/image_encoder_vit.h) as ONNX nodes, one function per module.
// Batch 1, every shape static; the relative-position rows each attention reads are gathered
// (and resized where the table is another size) into constants here.
#include <ATen/ATen.h>

#include "models/image_encoder_vit.h"
#include "onnx/layers.h"
#include "onnx/sam.h"

namespace sd::onnx {
namespace {

using namespace models::vit;

// get_rel_pos's rows for a size x size grid, as size x C x size. Resolved in a constant, or, in
// a graph of int8 weights (whose size matters), the table and the row index of every pair
// (a Gather that ONNX Runtime folds when it loads the model): a global attention's rows are
// size times the table.
std::string rel_pos(Graph& g, const at::Tensor& table, int64_t size, const std::string& hint) {
  if (!g.int8_weights()) return g.constant(get_rel_pos(size, size, table).permute({0, 2, 1}), hint);
  const std::string rows = g.op("Gather",
                                {g.constant(resized_rel_pos(size, size, table), hint),
                                 g.constant(rel_pos_rows(size, size).to(at::kInt), hint + "_rows")},
                                {{"axis", int64_t(0)}});
  return transpose(g, rows, {0, 2, 1});
}

// attn: B x HW x HW, q: B x HW x C -> attn + q . Rh + q . Rw (MViTv2's decomposed rel-pos).
std::string add_decomposed_rel_pos(Graph& g, AttentionImpl& m, const std::string& attn,
                                   const std::string& q, int64_t b, int64_t h, int64_t w) {
  const int64_t dim = m.rel_pos_h.size(1);
  const std::string r_q = reshape(g, q, {b, h, w, dim});
  const std::string rel_h =
      matmul(g, r_q, rel_pos(g, m.rel_pos_h, h, "rel_pos_h"));  // B x H x W x H
  const std::string rel_w = transpose(
      g, matmul(g, transpose(g, r_q, {0, 2, 1, 3}), rel_pos(g, m.rel_pos_w, w, "rel_pos_w")),
      {0, 2, 1, 3});
  std::string y = reshape(g, attn, {b, h, w, h, w});
  y = add(g, y, reshape(g, rel_h, {b, h, w, h, 1}));
  y = add(g, y, reshape(g, rel_w, {b, h, w, 1, w}));
  return reshape(g, y, {b, h * w, h * w});
}

// B x H x W x C -> B x H x W x C.
std::string attention(Graph& g, AttentionImpl& m, const std::string& x, int64_t b, int64_t h,
                      int64_t w) {
  Graph::Scope s(g, "attn");
  const int64_t heads = m.num_heads, dim = m.proj->weight.size(0), hd = dim / heads;
  std::string qkv;
  {
    Graph::Scope l(g, "qkv");
    qkv = linear(g, *m.qkv, x);
  }
  qkv = transpose(g, reshape(g, qkv, {b, h * w, 3, heads, hd}), {2, 0, 3, 1, 4});
  qkv = reshape(g, qkv, {3, b * heads, h * w, hd});
  auto part = [&](int64_t i) {
    return g.op("Gather", {qkv, g.constant(at::scalar_tensor(i, at::kLong))});
  };
  const std::string q = part(0), k = part(1), v = part(2);
  std::string attn = matmul(g, mul(g, q, g.scalar(float(m.scale))), transpose(g, k, {0, 2, 1}));
  if (m.rel_pos_h.defined()) attn = add_decomposed_rel_pos(g, m, attn, q, b * heads, h, w);
  attn = g.op("Softmax", {attn}, {{"axis", int64_t(-1)}});
  std::string y = reshape(g, matmul(g, attn, v), {b, heads, h, w, hd});
  y = reshape(g, transpose(g, y, {0, 2, 3, 1, 4}), {b, h, w, dim});
  Graph::Scope l(g, "proj");
  return linear(g, *m.proj, y);
}

std::string block(Graph& g, BlockImpl& m, const std::string& x, int64_t h, int64_t w, int64_t c) {
  std::string y;
  {
    Graph::Scope l(g, "norm1");
    y = layer_norm(g, *m.norm1, x);
  }
  const int64_t ws = m.window_size;
  if (ws > 0) {
    const int64_t ph = (h + ws - 1) / ws * ws, pw = (w + ws - 1) / ws * ws;
    const int64_t nh = ph / ws, nw = pw / ws;
    // window_partition: (nh * nw) x ws x ws x C
    if (ph > h || pw > w)
      y = g.op("Pad", {y, g.ints({0, 0, 0, 0, 0, ph - h, pw - w, 0})},
               {{"mode", std::string("constant")}});
    y = transpose(g, reshape(g, y, {1, nh, ws, nw, ws, c}), {0, 1, 3, 2, 4, 5});
    y = attention(g, *m.attn, reshape(g, y, {nh * nw, ws, ws, c}), nh * nw, ws, ws);
    // window_unpartition
    y = transpose(g, reshape(g, y, {1, nh, nw, ws, ws, c}), {0, 1, 3, 2, 4, 5});
    y = reshape(g, y, {1, ph, pw, c});
    if (ph > h || pw > w) y = slice(g, y, {0, 0}, {h, w}, {1, 2});
  } else {
    y = attention(g, *m.attn, y, 1, h, w);
  }
  y = add(g, x, y);
  std::string z;
  {
    Graph::Scope l(g, "norm2");
    z = layer_norm(g, *m.norm2, y);
  }
  Graph::Scope l(g, "mlp");
  return add(g, y, mlp_block(g, *m.mlp, z, models::Activation::gelu));
}

}  // namespace

std::string image_encoder_vit(Graph& g, models::ImageEncoderViT& m,
                              const models::EncoderConfig& config, const std::string& x) {
  std::string y;
  auto& proj = *m.patch_embed->proj;
  const int64_t c = proj.weight.size(0);
  const int64_t grid = config.family().img_size(config) / proj.weight.size(2);
  {
    Graph::Scope s(g, "patch_embed.proj");
    y = transpose(g, conv2d(g, proj, x), {0, 2, 3, 1});
  }
  if (m.pos_embed.defined()) y = add(g, y, weight(g, m.pos_embed, 3, "pos_embed"));
  for (size_t i = 0; i < m.blocks->size(); ++i) {
    Graph::Scope s(g, "blocks." + std::to_string(i));
    y = block(g, m.blocks->at<BlockImpl>(i), y, grid, grid, c);
  }
  return neck(g, m.neck, transpose(g, y, {0, 3, 1, 2}));
}

}  // namespace sd::onnx
