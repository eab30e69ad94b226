#include "models/config.h"

#include <filesystem>

#include "io/config.h"
#include "util/error.h"

namespace sd::models {

EncoderConfig encoder_preset(const std::string& name) {
  for (const EncoderFamily* family : encoder_families())
    for (const auto& [preset, config] : family->presets())
      if (preset == name) return config;
  throw Error("unknown encoder preset '" + name + "' (presets: " + encoder_presets_in_words() +
              ")");
}

std::vector<std::string> encoder_presets() {
  std::vector<std::string> names;
  for (const EncoderFamily* family : encoder_families())
    for (const auto& preset : family->presets()) names.push_back(preset.first);
  return names;
}

std::string encoder_presets_in_words() {
  std::string out;
  for (const std::string& name : encoder_presets()) out += (out.empty() ? "" : ", ") + name;
  return out;
}

EncoderConfig encoder_config_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw Error(source + ": an encoder config must be a JSON object");
  std::vector<const EncoderFamily*> found;
  std::string keys;
  for (const EncoderFamily* family : encoder_families()) {
    if (j.contains(family->key())) found.push_back(family);
    keys +=
        std::string(keys.empty() ? "" : ", ") + "'" + family->key() + "' (" + family->name() + ")";
  }
  if (found.size() != 1) throw Error(source + ": an encoder config needs exactly one of " + keys);
  return found.front()->from_json(j, source);
}

EncoderConfig resolve_encoder(const std::string& name_or_path) {
  for (const std::string& preset : encoder_presets())
    if (name_or_path == preset) return encoder_preset(name_or_path);
  if (!std::filesystem::is_regular_file(name_or_path))
    throw Error("encoder '" + name_or_path + "' is neither a preset (" +
                encoder_presets_in_words() + ") nor a JSON config file");
  return encoder_config_from_json(io::read_json_file(name_or_path), name_or_path);
}

nlohmann::json to_json(const EncoderConfig& config) { return config.family().to_json(config); }

std::string preset_name(const EncoderConfig& config) {
  const nlohmann::json j = to_json(config);
  for (const std::string& preset : encoder_presets())
    if (to_json(encoder_preset(preset)) == j) return preset;
  return "custom";
}

std::string encoder_in_words(const nlohmann::json& config) {
  std::string preset = "custom", family = "unrecognised";
  for (const std::string& name : encoder_presets()) {
    const EncoderConfig c = encoder_preset(name);
    if (to_json(c) == config) preset = name;
  }
  for (const EncoderFamily* f : encoder_families())
    if (config.is_object() && config.contains(f->key())) family = f->name();
  return "a " + preset + " " + family + " encoder";
}

}  // namespace sd::models
