// SAM's ImageEncoderViT as an encoder family: its config table, presets and what its
// weights show.
#include "io/config.h"
#include "models/image_encoder_vit.h"

namespace sd::models {
namespace {

using nlohmann::json;

ViTConfig sam_vit(int embed_dim, int depth, int num_heads, std::vector<int> global_attn_indexes) {
  ViTConfig c;
  c.embed_dim = embed_dim;
  c.depth = depth;
  c.num_heads = num_heads;
  c.global_attn_indexes = std::move(global_attn_indexes);
  return c;
}

json vit_json(const ViTConfig& c) {
  return {{"img_size", c.img_size},
          {"patch_size", c.patch_size},
          {"in_chans", c.in_chans},
          {"embed_dim", c.embed_dim},
          {"depth", c.depth},
          {"num_heads", c.num_heads},
          {"mlp_ratio", c.mlp_ratio},
          {"out_chans", c.out_chans},
          {"qkv_bias", c.qkv_bias},
          {"use_abs_pos", c.use_abs_pos},
          {"use_rel_pos", c.use_rel_pos},
          {"window_size", c.window_size},
          {"global_attn_indexes", c.global_attn_indexes}};
}

ViTConfig vit_from_json(const json& given, const std::string& source) {
  json j = io::merge_config(vit_json(ViTConfig{}), given, source);
  ViTConfig c;
  c.img_size = j.at("img_size");
  c.patch_size = j.at("patch_size");
  c.in_chans = j.at("in_chans");
  c.embed_dim = j.at("embed_dim");
  c.depth = j.at("depth");
  c.num_heads = j.at("num_heads");
  c.mlp_ratio = j.at("mlp_ratio");
  c.out_chans = j.at("out_chans");
  c.qkv_bias = j.at("qkv_bias");
  c.use_abs_pos = j.at("use_abs_pos");
  c.use_rel_pos = j.at("use_rel_pos");
  c.window_size = j.at("window_size");
  c.global_attn_indexes = config_int_list(j, "global_attn_indexes", source);
  require_config(c.depth > 0, source, "depth", "must be positive");
  require_config(c.num_heads > 0 && c.embed_dim > 0 && c.embed_dim % c.num_heads == 0, source,
                 "num_heads", "must divide embed_dim");
  require_config(c.patch_size > 0 && c.img_size % c.patch_size == 0, source, "patch_size",
                 "must divide img_size");
  require_config(c.window_size >= 0, source, "window_size", "must not be negative");
  for (int i : c.global_attn_indexes)
    require_config(i >= 0 && i < c.depth, source, "global_attn_indexes", "must lie in [0, depth)");
  return c;
}

// A windowed block's relative position tables have 2 * window - 1 rows, a global block's
// 2 * grid - 1.
json observe_vit(const WeightShapes& shapes, const std::string& prefix) {
  const auto* proj = shapes.shape(prefix + "patch_embed.proj.weight", 4);
  if (!proj) return nullptr;
  const int64_t dim = (*proj)[0], patch = (*proj)[2];
  json j = {{"embed_dim", dim},
            {"in_chans", (*proj)[1]},
            {"patch_size", patch},
            {"depth", shapes.count_indices(prefix + "blocks.")},
            {"qkv_bias", shapes.has(prefix + "blocks.0.attn.qkv.bias")}};
  int64_t grid = 1024 / patch;  // SAM's img_size, unless the position embedding says otherwise
  const auto* pos = shapes.shape(prefix + "pos_embed", 4);  // [1, grid, grid, dim]
  j["use_abs_pos"] = pos != nullptr;
  if (pos) {
    grid = (*pos)[1];
    j["img_size"] = grid * patch;
  }
  if (const auto* lin1 = shapes.shape(prefix + "blocks.0.mlp.lin1.weight", 2))
    j["mlp_ratio"] = shown_ratio((*lin1)[0], dim);
  if (const auto* neck = shapes.shape(prefix + "neck.0.weight", 4)) j["out_chans"] = (*neck)[0];
  const auto* table = shapes.shape(prefix + "blocks.0.attn.rel_pos_h", 2);  // [2 * size - 1, hd]
  j["use_rel_pos"] = table != nullptr;
  if (!table) return j;
  j["num_heads"] = dim / (*table)[1];
  json global = json::array();
  for (int64_t i = 0; i < j["depth"].get<int64_t>(); ++i) {
    const auto* rows = shapes.shape(prefix + "blocks." + std::to_string(i) + ".attn.rel_pos_h", 2);
    if (!rows) continue;
    const int64_t size = ((*rows)[0] + 1) / 2;
    if (size == grid)
      global.push_back(i);
    else
      j["window_size"] = size;
  }
  j["global_attn_indexes"] = global;
  return j;
}

class ViTFamily : public EncoderFamily {
 public:
  std::string name() const override { return "ViT"; }
  std::string key() const override { return "embed_dim"; }
  std::vector<std::pair<std::string, EncoderConfig>> presets() const override {
    return {{"vit_h", sam_vit(1280, 32, 16, {7, 15, 23, 31})},
            {"vit_l", sam_vit(1024, 24, 16, {5, 11, 17, 23})},
            {"vit_b", sam_vit(768, 12, 12, {2, 5, 8, 11})}};
  }
  EncoderConfig from_json(const json& given, const std::string& source) const override {
    return vit_from_json(given, source);
  }
  json to_json(const EncoderConfig& config) const override {
    return vit_json(config.as<ViTConfig>());
  }
  int64_t img_size(const EncoderConfig& config) const override {
    return config.as<ViTConfig>().img_size;
  }
  std::shared_ptr<ImageEncoder> build(const EncoderConfig& config) const override {
    return std::make_shared<ImageEncoderViT>(config.as<ViTConfig>());
  }
  json observe(const WeightShapes& shapes, const std::string& prefix) const override {
    return observe_vit(shapes, prefix);
  }
  std::string unshown(const json& observed) const override {
    return observed.contains("num_heads") ? ""
                                          : "its encoder's attention heads (no relative "
                                            "position tables)";
  }
  int64_t ratio_width(const std::string& key, const json& observed) const override {
    return key == "mlp_ratio" ? observed.at("embed_dim").get<int64_t>() : 0;
  }
  std::vector<std::string> summary_keys() const override { return {"embed_dim", "depth"}; }
  int block_of(const std::string& parameter, const EncoderConfig&) const override {
    if (parameter.compare(0, 12, "patch_embed.") == 0 || parameter == "pos_embed") return 0;
    return module_index(parameter, "blocks.");
  }
  int blocks(const EncoderConfig& config) const override { return config.as<ViTConfig>().depth; }
};

}  // namespace

const EncoderFamily& ViTConfig::family() {
  static const ViTFamily family;
  return family;
}

}  // namespace sd::models
