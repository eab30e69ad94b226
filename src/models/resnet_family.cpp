// NanoSAM's ResNet student as an encoder family: its config table, the resnet18 and resnet34
// presets and what its weights show.
#include <numeric>

#include "io/config_table.h"
#include "models/encoder_family.h"
#include "models/resnet.h"

namespace sd::models {
namespace {

using nlohmann::json;

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

class ResNetFamily : public TableFamily<ResNetConfig, ResNetEncoder> {
 public:
  std::string name() const override { return "ResNet"; }
  std::string key() const override { return "layers"; }
  std::vector<std::pair<std::string, EncoderConfig>> presets() const override {
    const io::ConfigTable<ResNetConfig>& table = ResNetConfig::table();
    return {{"resnet18", table.read({{"layers", {2, 2, 2, 2}}}, "the preset")},
            {"resnet34", table.read({{"layers", {3, 4, 6, 3}}}, "the preset")}};
  }
  int64_t img_size(const EncoderConfig& config) const override {
    return config.as<ResNetConfig>().img_size;
  }
  json observe(const WeightShapes& shapes, const std::string& prefix) const override {
    return observe_resnet(shapes, prefix);
  }
  std::string unshown(const json&) const override { return ""; }
  std::vector<std::string> summary_keys() const override { return {"layers"}; }
  // The stem is block 0, then the basic blocks in order; the neck comes after the blocks.
  int block_of(const std::string& parameter, const EncoderConfig& config) const override {
    const ResNetConfig& c = config.as<ResNetConfig>();
    if (starts_with(parameter, "backbone.conv1.") || starts_with(parameter, "backbone.bn1."))
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

const io::ConfigTable<ResNetConfig>& ResNetConfig::table() {
  using C = ResNetConfig;
  static const io::ConfigTable<C> table = io::agreeing(io::ConfigTable<C>({
      io::field("img_size", &C::img_size, 1024,
                io::Check{[](int v, const C&) { return v > 0 && v % 32 == 0; },
                          "must be a positive multiple of 32"},
                "side of the square input images"),
      io::field("layers", &C::layers, {2, 2, 2, 2}, io::each(io::positive(), 4, "stages"),
                "basic blocks of each stage (resnet18: 2, 2, 2, 2; resnet34: 3, 4, 6, 3)"),
      io::field("neck_channels", &C::neck_channels, 256, io::positive(),
                "channels of the neck's convolutions"),
      io::field("out_chans", &C::out_chans, 256, io::positive(), "channels of the embedding"),
  }));
  return table;
}

const EncoderFamily& ResNetConfig::family() {
  static const ResNetFamily family;
  return family;
}

}  // namespace sd::models
