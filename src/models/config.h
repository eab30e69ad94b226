#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/encoder_family.h"

// Encoder configs of every registered family (models/encoder_family.h): presets, JSON
// configs and their names.
namespace sd::models {

// A registered preset (`vit_h`, `vit_l`, `vit_b`, `vit_t`, ...); sd::Error listing the
// presets otherwise.
EncoderConfig encoder_preset(const std::string& name);
// The names encoder_preset knows, family by family.
std::vector<std::string> encoder_presets();
// "vit_h, vit_l, vit_b, vit_t": the presets for help texts and messages.
std::string encoder_presets_in_words();
// A JSON config of the family whose key it holds (ViT: embed_dim, TinyViT: embed_dims; the
// keys of the fixtures' config.json); unknown keys and wrong types are errors naming
// `source` and the key.
EncoderConfig encoder_config_from_json(const nlohmann::json& j, const std::string& source);
// A preset name or the path of a JSON config file.
EncoderConfig resolve_encoder(const std::string& name_or_path);
nlohmann::json to_json(const EncoderConfig& config);
// "vit_t", "vit_h", ... when the config equals a preset, else "custom".
std::string preset_name(const EncoderConfig& config);
// "a vit_b ViT encoder", "a custom TinyViT encoder" for a config as to_json writes it.
std::string encoder_in_words(const nlohmann::json& config);

}  // namespace sd::models
