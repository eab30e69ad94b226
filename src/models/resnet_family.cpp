// NanoSAM's ResNet student as an encoder family: its config table, the resnet18 and resnet34
// presets and what its weights show.
#include <numeric>

#include "io/config.h"
#include "models/encoder_family.h"
#include "models/resnet.h"

namespace sd::models {
namespace {

using nlohmann::json;

json resnet_json(const ResNetConfig& c) {
  return {{"img_size", c.img_size},
          {"layers", c.layers},
          {"neck_channels", c.neck_channels},
          {"out_chans", c.out_chans}};
}

ResNetConfig resnet_from_json(const json& given, const std::string& source) {
  json j = io::merge_config(resnet_json(ResNetConfig{}), given, source);
  ResNetConfig c;
  c.img_size = j.at("img_size");
  c.layers = config_int_list(j, "layers", source);
  c.neck_channels = j.at("neck_channels");
  c.out_chans = j.at("out_chans");
  require_config(c.layers.size() == 4, source, "layers", "must list 4 stages");
  for (int n : c.layers) require_config(n > 0, source, "layers", "must be positive");
  require_config(c.img_size > 0 && c.img_size % 32 == 0, source, "img_size",
                 "must be a positive multiple of 32");
  require_config(c.neck_channels > 0, source, "neck_channels", "must be positive");
  require_config(c.out_chans > 0, source, "out_chans", "must be positive");
  return c;
}

// Every key shows: the blocks of each stage, the neck's widths, the position embedding's grid.
json observe_resnet(const WeightShapes& shapes, const std::string& prefix) {
  const auto* up = shapes.shape(prefix + "up_1.0.weight", 4);   // [neck, 512, 3, 3]
  const auto* out = shapes.shape(prefix + "proj.2.weight", 4);  // [out_chans, neck, 1, 1]
  const auto* pos = shapes.shape(prefix + "pos_embedding", 4);  // [1, out_chans, g, g]
  if (!shapes.has(prefix + "backbone.conv1.weight") || !up || !out || !pos) return nullptr;
  json layers = json::array();
  for (int stage = 1;
       shapes.has(prefix + "backbone.layer" + std::to_string(stage) + ".0.conv1.weight"); ++stage)
    layers.push_back(shapes.count_indices(prefix + "backbone.layer" + std::to_string(stage) + "."));
  return {{"img_size", (*pos)[2] * 16},
          {"layers", layers},
          {"neck_channels", (*up)[0]},
          {"out_chans", (*out)[0]}};
}

class ResNetFamily : public EncoderFamily {
 public:
  std::string name() const override { return "ResNet"; }
  std::string key() const override { return "layers"; }
  std::vector<std::pair<std::string, EncoderConfig>> presets() const override {
    ResNetConfig resnet34;
    resnet34.layers = {3, 4, 6, 3};
    return {{"resnet18", ResNetConfig{}}, {"resnet34", resnet34}};
  }
  EncoderConfig from_json(const json& given, const std::string& source) const override {
    return resnet_from_json(given, source);
  }
  json to_json(const EncoderConfig& config) const override {
    return resnet_json(config.as<ResNetConfig>());
  }
  int64_t img_size(const EncoderConfig& config) const override {
    return config.as<ResNetConfig>().img_size;
  }
  std::shared_ptr<ImageEncoder> build(const EncoderConfig& config) const override {
    return std::make_shared<ResNetEncoder>(config.as<ResNetConfig>());
  }
  json observe(const WeightShapes& shapes, const std::string& prefix) const override {
    return observe_resnet(shapes, prefix);
  }
  std::string unshown(const json&) const override { return ""; }
  std::vector<std::string> summary_keys() const override { return {"layers"}; }
  // The stem is block 0, then the basic blocks in order; the neck comes after the blocks.
  int block_of(const std::string& parameter, const EncoderConfig& config) const override {
    const ResNetConfig& c = config.as<ResNetConfig>();
    if (parameter.rfind("backbone.conv1.", 0) == 0 || parameter.rfind("backbone.bn1.", 0) == 0)
      return 0;
    const int stage = module_index(parameter, "backbone.layer");
    if (stage < 1) return -1;
    const int first = 1 + std::accumulate(c.layers.begin(), c.layers.begin() + stage - 1, 0);
    return first + module_index(parameter.substr(parameter.find('.', 9) + 1), "");
  }
  int blocks(const EncoderConfig& config) const override {
    const ResNetConfig& c = config.as<ResNetConfig>();
    return 1 + std::accumulate(c.layers.begin(), c.layers.end(), 0);
  }
};

}  // namespace

const EncoderFamily& ResNetConfig::family() {
  static const ResNetFamily family;
  return family;
}

}  // namespace sd::models
