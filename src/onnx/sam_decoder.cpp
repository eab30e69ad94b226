// SAM's ONNX decoder (SamOnnxModel of segment_anything/utils/onnx.py): the prompt encoder as
// that module rewrites it for export, the mask decoder, the mask selection and the upscaling to
// the original image, as ONNX nodes, one function per module. Batch 1, any number of points.
#include <ATen/ATen.h>

#include <cmath>

#include "models/sam.h"
#include "onnx/layers.h"
#include "onnx/sam.h"

namespace sd::onnx {
namespace {

using models::MaskDecoderImpl;
using models::PromptEncoderImpl;

// The layers of layers.h under their module's name.
std::string linear(Graph& g, torch::nn::LinearImpl& m, const std::string& name,
                   const std::string& x) {
  Graph::Scope s(g, name);
  return onnx::linear(g, m, x);
}

std::string layer_norm(Graph& g, torch::nn::LayerNormImpl& m, const std::string& name,
                       const std::string& x) {
  Graph::Scope s(g, name);
  return onnx::layer_norm(g, m, x);
}

// 1 x N x 2 coordinates in [0, 1] -> 1 x N x C (PositionEmbeddingRandom._pe_encoding).
std::string pe_encoding(Graph& g, models::PositionEmbeddingRandomImpl& m, const std::string& x) {
  Graph::Scope s(g, "pe_layer");
  std::string c = g.op("Sub", {mul(g, x, g.scalar(2.0f)), g.scalar(1.0f)});
  c = matmul(g, c, g.constant(m.positional_encoding_gaussian_matrix, "gaussian_matrix"));
  c = mul(g, c, g.scalar(float(2 * M_PI)));
  return g.op("Concat", {g.op("Sin", {c}), g.op("Cos", {c})}, {{"axis", int64_t(-1)}});
}

// PositionEmbeddingRandom.forward((h, w)) as the reference's export computes it per run: the
// 1 x C x h x w encoding of the grid's cell centres (a 2-channel constant, not the 4 MB result).
std::string dense_pe(Graph& g, models::PositionEmbeddingRandomImpl& m, int64_t h, int64_t w) {
  Graph::Scope s(g, "prompt_encoder");
  const at::Tensor grid = at::ones({h, w}, m.positional_encoding_gaussian_matrix.options());
  const at::Tensor centres =
      at::stack({(grid.cumsum(1) - 0.5) / w, (grid.cumsum(0) - 0.5) / h}, -1);
  const std::string pe = pe_encoding(g, m, g.constant(centres, "grid"));  // h x w x C
  return g.op("Unsqueeze", {transpose(g, pe, {2, 0, 1}), g.ints({0})});
}

at::Tensor embedding(torch::nn::ModuleList& list, size_t i) {
  return list->ptr<torch::nn::EmbeddingImpl>(i)->weight;
}

// SamOnnxModel._embed_points: labels -1 (padding), 0, 1 (points), 2, 3 (box corners).
std::string embed_points(Graph& g, PromptEncoderImpl& m, const std::string& coords,
                         const std::string& labels, int64_t img_size) {
  Graph::Scope s(g, "prompt_encoder");
  const std::string xy = g.op("Div", {add(g, coords, g.scalar(0.5f)), g.scalar(float(img_size))});
  std::string e = pe_encoding(g, *m.pe_layer, xy);
  const std::string l = g.op("Unsqueeze", {labels, g.ints({-1})});
  auto is = [&](float label) {
    return g.op("Cast", {g.op("Equal", {l, g.scalar(label)})}, {{"to", int64_t(Type::float32)}});
  };
  const std::string padding = is(-1.0f);
  e = mul(g, e, g.op("Sub", {g.scalar(1.0f), padding}));
  e = add(g, e, mul(g, g.constant(m.not_a_point_embed->weight, "not_a_point_embed"), padding));
  for (size_t i = 0; i < m.point_embeddings->size(); ++i)
    e = add(g, e,
            mul(g, g.constant(embedding(m.point_embeddings, i), "point_embeddings"), is(float(i))));
  return e;
}

// SamOnnxModel._embed_masks: the mask's embedding where has_mask_input is 1, no_mask_embed
// where it is 0.
std::string embed_masks(Graph& g, PromptEncoderImpl& m, const std::string& mask,
                        const std::string& has_mask) {
  Graph::Scope s(g, "prompt_encoder");
  std::string y = mask;
  {
    Graph::Scope d(g, "mask_downscaling");
    for (size_t i = 0; i < m.mask_downscaling->size(); ++i) {
      Graph::Scope layer(g, std::to_string(i));
      auto* module = m.mask_downscaling->ptr(i).get();
      if (auto* c = dynamic_cast<torch::nn::Conv2dImpl*>(module))
        y = conv2d(g, *c, y);
      else if (auto* n = dynamic_cast<models::LayerNorm2dImpl*>(module))
        y = layer_norm_2d(g, *n, y);
      else
        y = gelu(g, y);
    }
  }
  const std::string has = reshape(g, has_mask, {1, 1, 1, 1});
  const std::string none = g.constant(m.no_mask_embed->weight.reshape({1, -1, 1, 1}), "no_mask");
  return add(g, mul(g, has, y), mul(g, g.op("Sub", {g.scalar(1.0f), has}), none));
}

// q: 1 x Nq x C, k and v: 1 x Nk x C -> 1 x Nq x C.
std::string attention(Graph& g, models::AttentionImpl& m, const std::string& name,
                      const std::string& q, const std::string& k, const std::string& v) {
  Graph::Scope s(g, name);
  const int64_t heads = m.num_heads(), internal = m.q_proj->weight.size(0);
  auto separate_heads = [&](const std::string& x) {  // 1 x N x C -> 1 x heads x N x C/heads
    return transpose(g, reshape(g, x, {1, -1, heads, internal / heads}), {0, 2, 1, 3});
  };
  const std::string qh = separate_heads(linear(g, *m.q_proj, "q_proj", q));
  const std::string kh = separate_heads(linear(g, *m.k_proj, "k_proj", k));
  const std::string vh = separate_heads(linear(g, *m.v_proj, "v_proj", v));
  std::string attn = matmul(g, qh, transpose(g, kh, {0, 1, 3, 2}));
  attn = g.op("Div", {attn, g.scalar(float(std::sqrt(double(internal / heads))))});
  attn = g.op("Softmax", {attn}, {{"axis", int64_t(-1)}});
  const std::string out =
      reshape(g, transpose(g, matmul(g, attn, vh), {0, 2, 1, 3}), {1, -1, internal});
  return linear(g, *m.out_proj, "out_proj", out);
}

// Returns the updated (queries, keys).
std::pair<std::string, std::string> two_way_attention_block(
    Graph& g, models::TwoWayAttentionBlockImpl& m, bool skip_first_layer_pe,
    const std::string& queries_in, const std::string& keys_in, const std::string& query_pe,
    const std::string& key_pe) {
  std::string queries = queries_in;
  if (skip_first_layer_pe) {
    queries = attention(g, *m.self_attn, "self_attn", queries, queries, queries);
  } else {
    const std::string q = add(g, queries, query_pe);
    queries = add(g, queries, attention(g, *m.self_attn, "self_attn", q, q, queries));
  }
  queries = layer_norm(g, *m.norm1, "norm1", queries);

  std::string q = add(g, queries, query_pe);
  const std::string k = add(g, keys_in, key_pe);
  queries =
      add(g, queries,
          attention(g, *m.cross_attn_token_to_image, "cross_attn_token_to_image", q, k, keys_in));
  queries = layer_norm(g, *m.norm2, "norm2", queries);

  std::string mlp_out;
  {
    Graph::Scope s(g, "mlp");
    mlp_out = mlp_block(g, *m.mlp, queries, models::Activation::relu);
  }
  queries = layer_norm(g, *m.norm3, "norm3", add(g, queries, mlp_out));

  q = add(g, queries, query_pe);
  const std::string keys =
      add(g, keys_in,
          attention(g, *m.cross_attn_image_to_token, "cross_attn_image_to_token", k, q, queries));
  return {queries, layer_norm(g, *m.norm4, "norm4", keys)};
}

// image: 1 x C x h x w, image_pe the same, tokens 1 x N x C -> (tokens, image 1 x hw x C).
std::pair<std::string, std::string> two_way_transformer(Graph& g, models::TwoWayTransformerImpl& m,
                                                        const std::string& image,
                                                        const std::string& image_pe,
                                                        const std::string& tokens, int64_t c) {
  Graph::Scope s(g, "transformer");
  auto to_tokens = [&](const std::string& x) {
    return transpose(g, reshape(g, x, {1, c, -1}), {0, 2, 1});
  };
  std::string keys = to_tokens(image);
  const std::string key_pe = to_tokens(image_pe);
  std::string queries = tokens;
  for (size_t i = 0; i < m.layers->size(); ++i) {
    Graph::Scope layer(g, "layers." + std::to_string(i));
    std::tie(queries, keys) =
        two_way_attention_block(g, m.layers->at<models::TwoWayAttentionBlockImpl>(i), i == 0,
                                queries, keys, tokens, key_pe);
  }
  const std::string q = add(g, queries, tokens);
  const std::string k = add(g, keys, key_pe);
  queries =
      add(g, queries,
          attention(g, *m.final_attn_token_to_image, "final_attn_token_to_image", q, k, keys));
  return {layer_norm(g, *m.norm_final_attn, "norm_final_attn", queries), keys};
}

// Linear layers with ReLU between them.
std::string mlp(Graph& g, models::MLPImpl& m, const std::string& x) {
  std::string y = x;
  for (size_t i = 0; i < m.layers->size(); ++i) {
    y = linear(g, *m.layers->ptr<models::LinearImpl>(i), "layers." + std::to_string(i), y);
    if (i + 1 < m.layers->size()) y = relu(g, y);
  }
  return y;
}

std::string output_upscaling(Graph& g, torch::nn::SequentialImpl& m, const std::string& x) {
  Graph::Scope s(g, "output_upscaling");
  std::string y = x;
  for (size_t i = 0; i < m.size(); ++i) {
    Graph::Scope layer(g, std::to_string(i));
    auto* module = m.ptr(i).get();
    if (auto* c = dynamic_cast<torch::nn::ConvTranspose2dImpl*>(module)) {
      const int64_t k = c->weight.size(2), stride = c->options.stride()->at(0);
      y = g.op("ConvTranspose", {y, g.constant(c->weight, "weight"), g.constant(c->bias, "bias")},
               {{"kernel_shape", std::vector<int64_t>{k, k}},
                {"strides", std::vector<int64_t>{stride, stride}}});
    } else if (auto* n = dynamic_cast<models::LayerNorm2dImpl*>(module)) {
      y = layer_norm_2d(g, *n, y);
    } else {
      y = gelu(g, y);
    }
  }
  return y;
}

// MaskDecoder.predict_masks: every mask token's 1 x 4h x 4w logits and the IoU predictions.
std::pair<std::string, std::string> predict_masks(Graph& g, MaskDecoderImpl& m,
                                                  const std::string& image_embeddings,
                                                  const std::string& image_pe,
                                                  const std::string& sparse,
                                                  const std::string& dense, int64_t h, int64_t w) {
  Graph::Scope s(g, "mask_decoder");
  const int64_t c = m.iou_token->weight.size(1), n_masks = m.mask_tokens->weight.size(0);
  const at::Tensor output_tokens =
      at::cat({m.iou_token->weight, m.mask_tokens->weight}, 0).unsqueeze(0);
  const std::string tokens =
      g.op("Concat", {g.constant(output_tokens, "output_tokens"), sparse}, {{"axis", int64_t(1)}});
  const std::string src = add(g, image_embeddings, dense);
  auto [hs, image] = two_way_transformer(g, *m.transformer, src, image_pe, tokens, c);

  const std::string iou_token_out =
      g.op("Gather", {hs, g.constant(at::scalar_tensor(0, at::kLong))}, {{"axis", int64_t(1)}});
  const std::string mask_tokens_out = slice(g, hs, {1}, {1 + n_masks}, {1});
  // image 1 x hw x C -> 1 x C x h x w -> upscaled 1 x C/8 x 4h x 4w
  const std::string upscaled = output_upscaling(
      g, *m.output_upscaling, reshape(g, transpose(g, image, {0, 2, 1}), {1, c, h, w}));
  std::vector<std::string> hyper_in_list;
  for (int64_t i = 0; i < n_masks; ++i) {
    Graph::Scope hyper(g, "output_hypernetworks_mlps." + std::to_string(i));
    const std::string token =
        g.op("Gather", {mask_tokens_out, g.constant(at::scalar_tensor(i, at::kLong))},
             {{"axis", int64_t(1)}});
    hyper_in_list.push_back(
        g.op("Unsqueeze",
             {mlp(g, *m.output_hypernetworks_mlps[i]->as<models::MLP>(), token), g.ints({1})}));
  }
  const std::string hyper_in = g.op("Concat", hyper_in_list, {{"axis", int64_t(1)}});
  const std::string masks = reshape(g, matmul(g, hyper_in, reshape(g, upscaled, {1, c / 8, -1})),
                                    {1, n_masks, 4 * h, 4 * w});
  std::string iou;
  {
    Graph::Scope head(g, "iou_prediction_head");
    iou = mlp(g, *m.iou_prediction_head, iou_token_out);
  }
  return {masks, iou};
}

// SamOnnxModel.select_masks: the first mask when more than one point (a box is two) was given,
// else the best of the others by predicted IoU.
std::pair<std::string, std::string> select_masks(Graph& g, const std::string& masks,
                                                 const std::string& iou,
                                                 const std::string& point_coords, int64_t n_masks) {
  Graph::Scope s(g, "select_masks");
  at::Tensor reweight = at::zeros({1, n_masks});
  reweight[0][0] = 1000.0f;
  const std::string num_points =
      g.op("Cast",
           {g.op("Gather",
                 {g.op("Shape", {point_coords}), g.constant(at::scalar_tensor(1, at::kLong))})},
           {{"to", int64_t(Type::float32)}});
  const std::string score = add(
      g, iou,
      mul(g, g.op("Sub", {num_points, g.scalar(2.5f)}), g.constant(reweight, "score_reweight")));
  const std::string best =
      g.op("ArgMax", {score}, {{"axis", int64_t(1)}, {"keepdims", int64_t(0)}});
  return {g.op("Gather", {masks, best}, {{"axis", int64_t(1)}}),
          g.op("Gather", {iou, best}, {{"axis", int64_t(1)}})};
}

// F.interpolate(bilinear, align_corners=False) to `sizes` (int64 [N, C, H, W]).
std::string resize_bilinear(Graph& g, const std::string& x, const std::string& sizes) {
  return g.op("Resize", {x, "", "", sizes},
              {{"mode", std::string("linear")},
               {"coordinate_transformation_mode", std::string("half_pixel")}});
}

// SamOnnxModel.mask_postprocessing: to img_size x img_size, the padding cropped off, then to
// orig_im_size.
std::string mask_postprocessing(Graph& g, const std::string& masks, const std::string& orig_im_size,
                                int64_t img_size) {
  Graph::Scope s(g, "mask_postprocessing");
  const std::string batch_channels =
      g.op("Slice", {g.op("Shape", {masks}), g.ints({0}), g.ints({2}), g.ints({0})});
  auto sizes = [&](const std::string& hw) {
    return g.op("Concat", {batch_channels, hw}, {{"axis", int64_t(0)}});
  };
  std::string y = resize_bilinear(g, masks, sizes(g.ints({img_size, img_size})));
  // resize_longest_image_size: floor(img_size / max(size) * size + 0.5)
  const std::string scale = g.op(
      "Div",
      {g.scalar(float(img_size)), g.op("ReduceMax", {orig_im_size}, {{"keepdims", int64_t(0)}})});
  const std::string prepadded =
      g.op("Cast", {g.op("Floor", {add(g, mul(g, scale, orig_im_size), g.scalar(0.5f))})},
           {{"to", int64_t(Type::int64)}});
  y = g.op("Slice", {y, g.ints({0, 0}), prepadded, g.ints({2, 3})});
  const std::string orig = g.op("Cast", {orig_im_size}, {{"to", int64_t(Type::int64)}});
  return resize_bilinear(g, y, sizes(orig));
}

}  // namespace

void sam_onnx_model(Graph& g, models::SamImpl& sam, bool return_single_mask) {
  PromptEncoderImpl& pe = *sam.prompt_encoder;
  const int64_t c = pe.embed_dim(), img_size = sam.img_size();
  const auto [h, w] = pe.image_embedding_size();
  const auto [mh, mw] = std::array<int64_t, 2>{4 * h, 4 * w};
  g.input("image_embeddings", Type::float32, {int64_t(1), c, h, w});
  g.input("point_coords", Type::float32, {int64_t(1), std::string("num_points"), int64_t(2)});
  g.input("point_labels", Type::float32, {int64_t(1), std::string("num_points")});
  g.input("mask_input", Type::float32, {int64_t(1), int64_t(1), mh, mw});
  g.input("has_mask_input", Type::float32, {int64_t(1)});
  g.input("orig_im_size", Type::float32, {int64_t(2)});

  const std::string sparse = embed_points(g, pe, "point_coords", "point_labels", img_size);
  const std::string dense = embed_masks(g, pe, "mask_input", "has_mask_input");
  const std::string image_pe = dense_pe(g, *pe.pe_layer, h, w);
  auto [masks, scores] =
      predict_masks(g, *sam.mask_decoder, "image_embeddings", image_pe, sparse, dense, h, w);
  const int64_t n_masks = sam.mask_decoder->mask_tokens->weight.size(0);
  if (return_single_mask)
    std::tie(masks, scores) = select_masks(g, masks, scores, "point_coords", n_masks);
  const std::string upscaled = mask_postprocessing(g, masks, "orig_im_size", img_size);
  const int64_t out_masks = return_single_mask ? 1 : n_masks;
  g.output(upscaled, "masks", Type::float32,
           {int64_t(1), out_masks, std::string("height"), std::string("width")});
  g.output(scores, "iou_predictions", Type::float32, {int64_t(1), out_masks});
  g.output(masks, "low_res_masks", Type::float32, {int64_t(1), out_masks, mh, mw});
}

}  // namespace sd::onnx
