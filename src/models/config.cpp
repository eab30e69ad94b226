#include "models/config.h"

#include <algorithm>
#include <filesystem>

#include "io/config.h"
#include "util/error.h"

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

void require(bool ok, const std::string& source, const std::string& key, const std::string& what) {
  if (!ok) throw Error(source + ": key '" + key + "' " + what);
}

std::vector<int> int_list(const json& j, const std::string& key, const std::string& source) {
  const json& list = j.at(key);
  for (const auto& v : list) require(v.is_number_integer(), source, key, "must list integers");
  return list.get<std::vector<int>>();
}

bool merges_with_stride_1(int out_dim) {
  return out_dim == 320 || out_dim == 448 || out_dim == 576;
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
  c.global_attn_indexes = int_list(j, "global_attn_indexes", source);
  require(c.depth > 0, source, "depth", "must be positive");
  require(c.num_heads > 0 && c.embed_dim > 0 && c.embed_dim % c.num_heads == 0, source, "num_heads",
          "must divide embed_dim");
  require(c.patch_size > 0 && c.img_size % c.patch_size == 0, source, "patch_size",
          "must divide img_size");
  require(c.window_size >= 0, source, "window_size", "must not be negative");
  for (int i : c.global_attn_indexes)
    require(i >= 0 && i < c.depth, source, "global_attn_indexes", "must lie in [0, depth)");
  return c;
}

TinyViTConfig tiny_vit_from_json(const json& given, const std::string& source) {
  json j = io::merge_config(tiny_vit_json(TinyViTConfig{}), given, source);
  TinyViTConfig c;
  c.img_size = j.at("img_size");
  c.in_chans = j.at("in_chans");
  c.num_classes = j.at("num_classes");
  c.embed_dims = int_list(j, "embed_dims", source);
  c.depths = int_list(j, "depths", source);
  c.num_heads = int_list(j, "num_heads", source);
  c.window_sizes = int_list(j, "window_sizes", source);
  c.mlp_ratio = j.at("mlp_ratio");
  c.mbconv_expand_ratio = j.at("mbconv_expand_ratio");
  c.local_conv_size = j.at("local_conv_size");
  c.out_chans = j.at("out_chans");
  // MobileSAM's TinyViT has four stages; only the last merging keeps the grid (stride 1).
  for (const char* key : {"embed_dims", "depths", "num_heads", "window_sizes"})
    require(j.at(key).size() == 4, source, key, "must list 4 stages");
  for (int s = 1; s < 4; ++s) {
    require(merges_with_stride_1(c.embed_dims[s]) == (s == 3), source, "embed_dims",
            "must end with 320, 448 or 576 (a stride-1 merging keeps the 64x64 grid) and use "
            "none of these before");
    require(c.num_heads[s] > 0 && c.embed_dims[s] % c.num_heads[s] == 0, source, "num_heads",
            "must divide embed_dims");
  }
  for (int d : c.depths) require(d > 0, source, "depths", "must be positive");
  for (int w : c.window_sizes) require(w > 0, source, "window_sizes", "must be positive");
  require(c.img_size % 64 == 0, source, "img_size", "must be a multiple of 64");
  return c;
}

}  // namespace

EncoderConfig encoder_preset(const std::string& name) {
  if (name == "vit_h") return sam_vit(1280, 32, 16, {7, 15, 23, 31});
  if (name == "vit_l") return sam_vit(1024, 24, 16, {5, 11, 17, 23});
  if (name == "vit_b") return sam_vit(768, 12, 12, {2, 5, 8, 11});
  if (name == "vit_t") return TinyViTConfig{};
  throw Error("unknown encoder preset '" + name + "' (presets: vit_h, vit_l, vit_b, vit_t)");
}

const std::vector<std::string>& encoder_presets() {
  static const std::vector<std::string> names = {"vit_h", "vit_l", "vit_b", "vit_t"};
  return names;
}

EncoderConfig encoder_config_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw Error(source + ": an encoder config must be a JSON object");
  bool tiny = j.contains("embed_dims"), vit = j.contains("embed_dim");
  if (tiny == vit)
    throw Error(source +
                ": an encoder config needs exactly one of 'embed_dim' (SAM ViT) "
                "and 'embed_dims' (TinyViT)");
  if (tiny) return tiny_vit_from_json(j, source);
  return vit_from_json(j, source);
}

EncoderConfig resolve_encoder(const std::string& name_or_path) {
  for (const std::string& preset : encoder_presets())
    if (name_or_path == preset) return encoder_preset(name_or_path);
  if (!std::filesystem::is_regular_file(name_or_path))
    throw Error("encoder '" + name_or_path +
                "' is neither a preset (vit_h, vit_l, vit_b, vit_t) nor a JSON config file");
  return encoder_config_from_json(io::read_json_file(name_or_path), name_or_path);
}

nlohmann::json to_json(const EncoderConfig& config) {
  if (auto* vit = std::get_if<ViTConfig>(&config)) return vit_json(*vit);
  return tiny_vit_json(std::get<TinyViTConfig>(config));
}

std::string preset_name(const EncoderConfig& config) {
  json j = to_json(config);
  for (const std::string& preset : encoder_presets())
    if (to_json(encoder_preset(preset)) == j) return preset;
  return "custom";
}

}  // namespace sd::models
