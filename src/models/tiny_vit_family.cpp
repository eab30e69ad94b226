// MobileSAM's TinyViT as an encoder family: its config table, the vit_t preset and what its
// weights show.
#include <cmath>
#include <numeric>

#include "io/config_table.h"
#include "models/tiny_vit.h"

namespace sd::models {
namespace {

using nlohmann::json;

using io::Check;
using io::field;
using io::positive;

// MobileSAM's TinyViT has four stages; only the last merging keeps the grid (stride 1).
bool merges_with_stride_1(int out_dim) {
  return out_dim == 320 || out_dim == 448 || out_dim == 576;
}

bool stride_1_last(const std::vector<int>& dims) {
  io::require_size(dims, 4, "stages");
  for (size_t s = 1; s < 4; ++s)
    if (merges_with_stride_1(dims[s]) != (s == 3)) return false;
  return std::all_of(dims.begin(), dims.end(), [](int d) { return d > 0; });
}

// Stage 0 is convolutional: its heads are unused.
bool heads_divide(const std::vector<int>& heads, const TinyViTConfig& c) {
  io::require_size(heads, 4, "stages");
  for (size_t s = 1; s < 4; ++s)
    if (heads[s] <= 0 || c.embed_dims.at(s) % heads[s] != 0) return false;
  return true;
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

class TinyViTFamily : public TableFamily<TinyViTConfig, TinyViT> {
 public:
  std::string name() const override { return "TinyViT"; }
  std::string key() const override { return "embed_dims"; }
  std::vector<std::pair<std::string, EncoderConfig>> presets() const override {
    return {{"vit_t", TinyViTConfig{}}};
  }
  int64_t img_size(const EncoderConfig& config) const override {
    return config.as<TinyViTConfig>().img_size;
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
    if (starts_with(parameter, "patch_embed.")) return 0;
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

const io::ConfigTable<TinyViTConfig>& TinyViTConfig::table() {
  using C = TinyViTConfig;
  static const io::ConfigTable<C> table = io::agreeing(io::ConfigTable<C>({
      field("img_size", &C::img_size, 1024,
            Check{[](int v, const C&) { return v > 0 && v % 64 == 0; },
                  "must be a positive multiple of 64"},
            "side of the square input images"),
      field("in_chans", &C::in_chans, 3, positive(), "channels of the input images"),
      field("num_classes", &C::num_classes, 1000, io::non_negative(),
            "classes of the classifier head (unused; kept so that checkpoints load strictly)"),
      field("embed_dims", &C::embed_dims, {64, 128, 160, 320},
            Check{[](const std::vector<int>& v, const C&) { return stride_1_last(v); },
                  "must end with 320, 448 or 576 (a stride-1 merging keeps the 64x64 grid) and "
                  "use none of these before"},
            "width of each stage"),
      field("depths", &C::depths, {2, 2, 6, 2}, io::each(positive(), 4, "stages"),
            "blocks of each stage"),
      field("num_heads", &C::num_heads, {2, 4, 5, 10},
            Check{heads_divide, "must divide embed_dims"},
            "attention heads of each stage (the first, convolutional, has none)"),
      field("window_sizes", &C::window_sizes, {7, 7, 14, 7}, io::each(positive(), 4, "stages"),
            "side of each stage's attention windows"),
      field("mlp_ratio", &C::mlp_ratio, 4.0, positive(), "MLP width over the stage's width"),
      field("mbconv_expand_ratio", &C::mbconv_expand_ratio, 4.0, positive(),
            "MBConv width over the first stage's width"),
      field("local_conv_size", &C::local_conv_size, 3, positive(),
            "side of the attention blocks' depthwise convolution"),
      field("out_chans", &C::out_chans, 256, positive(), "channels of the neck's output"),
  }));
  return table;
}

const EncoderFamily& TinyViTConfig::family() {
  static const TinyViTFamily family;
  return family;
}

}  // namespace sd::models
