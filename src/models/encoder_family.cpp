#include "models/encoder_family.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "models/image_encoder_vit.h"
#include "models/resnet.h"
#include "models/tiny_vit.h"

namespace sd::models {
namespace {

std::vector<const EncoderFamily*>& registry() {
  static std::vector<const EncoderFamily*> families = [] {
    // The families built in, one line each.
    return std::vector<const EncoderFamily*>{
        &ViTConfig::family(),
        &TinyViTConfig::family(),
        &ResNetConfig::family(),
    };
  }();
  return families;
}

}  // namespace

std::string EncoderConfig::family_name() const { return family_->name(); }

const std::vector<int64_t>* WeightShapes::shape(const std::string& key, size_t dims) const {
  auto it = shapes_.find(key);
  return it != shapes_.end() && it->second.size() == dims ? &it->second : nullptr;
}

int64_t WeightShapes::count_indices(const std::string& prefix) const {
  std::set<std::string> seen;
  for (auto it = shapes_.lower_bound(prefix); it != shapes_.end() && starts_with(it->first, prefix);
       ++it) {
    const std::string& key = it->first;
    std::string index = key.substr(prefix.size(), key.find('.', prefix.size()) - prefix.size());
    if (!index.empty() && std::all_of(index.begin(), index.end(), ::isdigit)) seen.insert(index);
  }
  return static_cast<int64_t>(seen.size());
}

int module_index(const std::string& name, const std::string& prefix) {
  if (!starts_with(name, prefix)) return -1;
  return std::stoi(name.substr(prefix.size(), name.find('.', prefix.size()) - prefix.size()));
}

double shown_ratio(int64_t hidden, int64_t width) {
  const double r = double(hidden) / double(width);
  return int64_t(double(width) * r) == hidden ? r : (double(hidden) + 0.5) / double(width);
}

void register_encoder_family(const EncoderFamily& family) {
  std::set<std::string> presets;
  for (const auto& [preset, config] : family.presets()) presets.insert(preset);
  for (const EncoderFamily* f : registry()) {
    if (f->name() == family.name() || f->key() == family.key())
      throw Error("encoder family '" + family.name() + "' (key '" + family.key() +
                  "'): the family '" + f->name() + "' (key '" + f->key() + "') is registered");
    for (const auto& [preset, config] : f->presets())
      if (presets.count(preset))
        throw Error("encoder family '" + family.name() + "': the preset '" + preset +
                    "' is the family '" + f->name() + "''s");
  }
  registry().push_back(&family);
}

std::vector<const EncoderFamily*> encoder_families() { return registry(); }

const EncoderFamily& encoder_family(const std::string& name) {
  for (const EncoderFamily* f : registry())
    if (f->name() == name) return *f;
  throw Error("unknown encoder family '" + name + "' (families: " + encoder_families_in_words() +
              ")");
}

std::string encoder_families_in_words() {
  std::string out;
  for (const EncoderFamily* f : registry()) out += (out.empty() ? "" : ", ") + f->name();
  return out;
}

}  // namespace sd::models
