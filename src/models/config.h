#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <variant>
#include <vector>

namespace sd::models {

// SAM's ImageEncoderViT (vit_h / vit_l / vit_b and any other size).
struct ViTConfig {
  int img_size = 1024;
  int patch_size = 16;
  int in_chans = 3;
  int embed_dim = 768;
  int depth = 12;
  int num_heads = 12;
  double mlp_ratio = 4.0;
  int out_chans = 256;
  bool qkv_bias = true;
  bool use_abs_pos = true;
  bool use_rel_pos = true;
  int window_size = 14;
  std::vector<int> global_attn_indexes = {2, 5, 8, 11};
};

// MobileSAM's TinyViT (vit_t and the 11M / 21M sizes).
struct TinyViTConfig {
  int img_size = 1024;
  int in_chans = 3;
  int num_classes = 1000;  // the unused classifier head, kept so checkpoints load strictly
  std::vector<int> embed_dims = {64, 128, 160, 320};
  std::vector<int> depths = {2, 2, 6, 2};
  std::vector<int> num_heads = {2, 4, 5, 10};
  std::vector<int> window_sizes = {7, 7, 14, 7};
  double mlp_ratio = 4.0;
  double mbconv_expand_ratio = 4.0;
  int local_conv_size = 3;
  int out_chans = 256;
};

using EncoderConfig = std::variant<ViTConfig, TinyViTConfig>;

// `vit_h`, `vit_l`, `vit_b`, `vit_t`; sd::Error listing the presets otherwise.
EncoderConfig encoder_preset(const std::string& name);
// The names encoder_preset knows.
const std::vector<std::string>& encoder_presets();
// The keys of the fixtures' config.json (ViT: embed_dim, depth, num_heads,
// global_attn_indexes, window_size; TinyViT: embed_dims, depths, num_heads, window_sizes);
// unknown keys and wrong types are errors naming `source` and the key.
EncoderConfig encoder_config_from_json(const nlohmann::json& j, const std::string& source);
// A preset name or the path of a JSON config file.
EncoderConfig resolve_encoder(const std::string& name_or_path);
nlohmann::json to_json(const EncoderConfig& config);
// "vit_t", "vit_h", ... when the config equals a preset, else "custom".
std::string preset_name(const EncoderConfig& config);

}  // namespace sd::models
