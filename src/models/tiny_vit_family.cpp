// MobileSAM's TinyViT as an encoder family: its config table, the vit_t preset and what its
// weights show.
#include <cmath>
#include <numeric>

#include "io/config.h"
#include "models/tiny_vit.h"

namespace sd::models {
namespace {

using nlohmann::json;

json tiny_vit_json(const TinyViTConfig& c) {
  return {{"img_size", c.img_size},
          {"in_chans", c.in_chans},
          {"num_classes", c.num_classes},
          {"embed_dims", c.embed_dims},
          {"depths", c.depths},
          {"num_heads", c.num_heads},
          {"window_sizes", c.window_sizes},
          {"mlp_ratio", c.mlp_ratio},
          {"mbconv_expand_ratio", c.mbconv_expand_ratio},
          {"local_conv_size", c.local_conv_size},
          {"out_chans", c.out_chans}};
}

bool merges_with_stride_1(int out_dim) {
  return out_dim == 320 || out_dim == 448 || out_dim == 576;
}

TinyViTConfig tiny_vit_from_json(const json& given, const std::string& source) {
  json j = io::merge_config(tiny_vit_json(TinyViTConfig{}), given, source);
  TinyViTConfig c;
  c.img_size = j.at("img_size");
  c.in_chans = j.at("in_chans");
  c.num_classes = j.at("num_classes");
  c.embed_dims = config_int_list(j, "embed_dims", source);
  c.depths = config_int_list(j, "depths", source);
  c.num_heads = config_int_list(j, "num_heads", source);
  c.window_sizes = config_int_list(j, "window_sizes", source);
  c.mlp_ratio = j.at("mlp_ratio");
  c.mbconv_expand_ratio = j.at("mbconv_expand_ratio");
  c.local_conv_size = j.at("local_conv_size");
  c.out_chans = j.at("out_chans");
  // MobileSAM's TinyViT has four stages; only the last merging keeps the grid (stride 1).
  for (const char* key : {"embed_dims", "depths", "num_heads", "window_sizes"})
    require_config(j.at(key).size() == 4, source, key, "must list 4 stages");
  for (int s = 1; s < 4; ++s) {
    require_config(merges_with_stride_1(c.embed_dims[s]) == (s == 3), source, "embed_dims",
                   "must end with 320, 448 or 576 (a stride-1 merging keeps the 64x64 grid) and "
                   "use none of these before");
    require_config(c.num_heads[s] > 0 && c.embed_dims[s] % c.num_heads[s] == 0, source, "num_heads",
                   "must divide embed_dims");
  }
  for (int d : c.depths) require_config(d > 0, source, "depths", "must be positive");
  for (int w : c.window_sizes) require_config(w > 0, source, "window_sizes", "must be positive");
  require_config(c.img_size % 64 == 0, source, "img_size", "must be a multiple of 64");
  return c;
}

// Stage 0 is convolutional (MBConv), the later stages attention blocks with a
// [num_heads, window * window] table of attention biases: stage 0's num_heads and
// window_sizes entries are null, shown by no weight.
json observe_tiny_vit(const WeightShapes& shapes, const std::string& prefix) {
  if (!shapes.has(prefix + "patch_embed.seq.0.c.weight")) return nullptr;
  json dims = json::array(), depths = json::array(), heads = json::array(), windows = json::array();
  const int64_t stages = shapes.count_indices(prefix + "layers.");
  for (int64_t i = 0; i < stages; ++i) {
    const std::string blocks = prefix + "layers." + std::to_string(i) + ".blocks.";
    const auto* conv = shapes.shape(blocks + "0.conv1.c.weight", 4);    // [hidden, dim, 1, 1]
    const auto* norm = shapes.shape(blocks + "0.attn.norm.weight", 1);  // [dim]
    if (conv)
      dims.push_back((*conv)[1]);
    else if (norm)
      dims.push_back((*norm)[0]);
    else
      return nullptr;
    depths.push_back(shapes.count_indices(blocks));
    const auto* biases = shapes.shape(blocks + "0.attn.attention_biases", 2);
    const int64_t window = biases ? std::lround(std::sqrt(double((*biases)[1]))) : 0;
    const bool square = biases && window * window == (*biases)[1];
    heads.push_back(square ? json((*biases)[0]) : json());
    windows.push_back(square ? json(window) : json());
  }
  json j = {{"embed_dims", dims}, {"depths", depths}};
  if (std::any_of(heads.begin(), heads.end(), [](const json& h) { return !h.is_null(); })) {
    j["num_heads"] = heads;
    j["window_sizes"] = windows;
  }
  if (const auto* stem = shapes.shape(prefix + "patch_embed.seq.0.c.weight", 4))
    j["in_chans"] = (*stem)[1];
  if (const auto* conv = shapes.shape(prefix + "layers.0.blocks.0.conv1.c.weight", 4))
    j["mbconv_expand_ratio"] = shown_ratio((*conv)[0], (*conv)[1]);
  if (const auto* fc1 = shapes.shape(prefix + "layers.1.blocks.0.mlp.fc1.weight", 2))
    j["mlp_ratio"] = shown_ratio((*fc1)[0], (*fc1)[1]);
  if (const auto* local = shapes.shape(prefix + "layers.1.blocks.0.local_conv.c.weight", 4))
    j["local_conv_size"] = (*local)[2];
  if (const auto* neck = shapes.shape(prefix + "neck.0.weight", 4)) j["out_chans"] = (*neck)[0];
  const auto* head = shapes.shape(prefix + "head.weight", 2);
  j["num_classes"] = head ? (*head)[0] : 0;
  return j;
}

class TinyViTFamily : public EncoderFamily {
 public:
  std::string name() const override { return "TinyViT"; }
  std::string key() const override { return "embed_dims"; }
  std::vector<std::pair<std::string, EncoderConfig>> presets() const override {
    return {{"vit_t", TinyViTConfig{}}};
  }
  EncoderConfig from_json(const json& given, const std::string& source) const override {
    return tiny_vit_from_json(given, source);
  }
  json to_json(const EncoderConfig& config) const override {
    return tiny_vit_json(config.as<TinyViTConfig>());
  }
  int64_t img_size(const EncoderConfig& config) const override {
    return config.as<TinyViTConfig>().img_size;
  }
  std::shared_ptr<ImageEncoder> build(const EncoderConfig& config) const override {
    return std::make_shared<TinyViT>(config.as<TinyViTConfig>());
  }
  json observe(const WeightShapes& shapes, const std::string& prefix) const override {
    return observe_tiny_vit(shapes, prefix);
  }
  std::string unshown(const json& observed) const override {
    return observed.contains("num_heads") ? ""
                                          : "its encoder's attention heads (no attention biases)";
  }
  // mbconv_expand_ratio widens the first stage, mlp_ratio the attention stages.
  int64_t ratio_width(const std::string& key, const json& observed) const override {
    if (key == "mbconv_expand_ratio") return observed.at("embed_dims").at(0).get<int64_t>();
    if (key == "mlp_ratio") return observed.at("embed_dims").at(1).get<int64_t>();
    return 0;
  }
  std::vector<std::string> summary_keys() const override { return {"embed_dims", "depths"}; }
  // A stage's downsampling counts as its last block.
  int block_of(const std::string& parameter, const EncoderConfig& config) const override {
    const TinyViTConfig& c = config.as<TinyViTConfig>();
    if (parameter.compare(0, 12, "patch_embed.") == 0) return 0;
    const int layer = module_index(parameter, "layers.");
    if (layer < 0) return -1;
    const int first = std::accumulate(c.depths.begin(), c.depths.begin() + layer, 0);
    const int block = module_index(parameter.substr(parameter.find('.', 7) + 1), "blocks.");
    return block >= 0 ? first + block : first + c.depths[size_t(layer)] - 1;
  }
  int blocks(const EncoderConfig& config) const override {
    const TinyViTConfig& c = config.as<TinyViTConfig>();
    return std::accumulate(c.depths.begin(), c.depths.end(), 0);
  }
};

}  // namespace

const EncoderFamily& TinyViTConfig::family() {
  static const TinyViTFamily family;
  return family;
}

}  // namespace sd::models
