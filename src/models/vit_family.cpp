// SAM's ImageEncoderViT as an encoder family: its config table, presets and what its
// weights show.
#include "io/config_table.h"
#include "models/image_encoder_vit.h"

namespace sd::models {
namespace {

using nlohmann::json;

using io::Check;
using io::field;
using io::positive;

// One of SAM's sizes: the table's defaults (vit_b's) with these.
ViTConfig sam_vit(int embed_dim, int depth, int num_heads, std::vector<int> global_attn_indexes) {
  return ViTConfig::table().read({{"embed_dim", embed_dim},
                                  {"depth", depth},
                                  {"num_heads", num_heads},
                                  {"global_attn_indexes", global_attn_indexes}},
                                 "the preset");
}

// A positive divisor of the key `key` (the member `of`).
auto divides(int ViTConfig::*of, const std::string& key) {
  return Check{[of](int v, const ViTConfig& c) { return v > 0 && c.*of % v == 0; },
               "must divide " + key};
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

class ViTFamily : public TableFamily<ViTConfig, ImageEncoderViT> {
 public:
  std::string name() const override { return "ViT"; }
  std::string key() const override { return "embed_dim"; }
  std::vector<std::pair<std::string, EncoderConfig>> presets() const override {
    return {{"vit_h", sam_vit(1280, 32, 16, {7, 15, 23, 31})},
            {"vit_l", sam_vit(1024, 24, 16, {5, 11, 17, 23})},
            {"vit_b", sam_vit(768, 12, 12, {2, 5, 8, 11})}};
  }
  int64_t img_size(const EncoderConfig& config) const override {
    return config.as<ViTConfig>().img_size;
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
    if (starts_with(parameter, "patch_embed.") || parameter == "pos_embed") return 0;
    return module_index(parameter, "blocks.");
  }
  int blocks(const EncoderConfig& config) const override { return config.as<ViTConfig>().depth; }
};

}  // namespace

const io::ConfigTable<ViTConfig>& ViTConfig::table() {
  using C = ViTConfig;
  static const io::ConfigTable<C> table = io::agreeing(io::ConfigTable<C>({
      field("img_size", &C::img_size, 1024, positive(), "side of the square input images"),
      field("patch_size", &C::patch_size, 16, divides(&C::img_size, "img_size"),
            "side of the patches the embedding takes"),
      field("in_chans", &C::in_chans, 3, positive(), "channels of the input images"),
      field("embed_dim", &C::embed_dim, 768, positive(), "width of the blocks"),
      field("depth", &C::depth, 12, positive(), "number of blocks"),
      field("num_heads", &C::num_heads, 12, divides(&C::embed_dim, "embed_dim"),
            "attention heads of each block"),
      field("mlp_ratio", &C::mlp_ratio, 4.0, positive(), "MLP width over embed_dim"),
      field("out_chans", &C::out_chans, 256, positive(), "channels of the neck's output"),
      field("qkv_bias", &C::qkv_bias, true, io::any_value(), "the qkv projection has a bias"),
      field("use_abs_pos", &C::use_abs_pos, true, io::any_value(),
            "a learned absolute position embedding"),
      field("use_rel_pos", &C::use_rel_pos, true, io::any_value(),
            "relative position tables in the attention"),
      field("window_size", &C::window_size, 14, io::non_negative(),
            "side of the attention windows (0: global attention everywhere)"),
      field("global_attn_indexes", &C::global_attn_indexes, {2, 5, 8, 11},
            Check{[](const std::vector<int>& v, const C& c) {
                    return std::all_of(v.begin(), v.end(),
                                       [&](int i) { return i >= 0 && i < c.depth; });
                  },
                  "must lie in [0, depth)"},
            "the blocks with global attention"),
  }));
  return table;
}

const EncoderFamily& ViTConfig::family() {
  static const ViTFamily family;
  return family;
}

}  // namespace sd::models
