#include "onnx/encoder_exporter.h"

#include <utility>
#include <vector>

#include "onnx/sam.h"

namespace sd::onnx {
namespace {

std::vector<std::pair<std::string, EncoderExporter>>& registry() {
  static std::vector<std::pair<std::string, EncoderExporter>> exporters{
      // The families built in, one line each.
      {models::ViTConfig::family().name(), exporter_of<models::ImageEncoderViT>(image_encoder_vit)},
      {models::TinyViTConfig::family().name(), exporter_of<models::TinyViT>(tiny_vit)},
      {models::ResNetConfig::family().name(), exporter_of<models::ResNetEncoder>(resnet_encoder)},
  };
  return exporters;
}

std::string families_in_words() {
  std::string out;
  for (const auto& [family, exporter] : registry()) out += (out.empty() ? "" : ", ") + family;
  return out;
}

}  // namespace

void register_encoder_exporter(const std::string& family, EncoderExporter exporter) {
  for (const auto& entry : registry())
    if (entry.first == family)
      throw Error("ONNX export: the encoder family '" + family + "' has an exporter already");
  registry().emplace_back(family, std::move(exporter));
}

const EncoderExporter& encoder_exporter(const std::string& family) {
  for (const auto& [name, exporter] : registry())
    if (name == family) return exporter;
  throw Error("ONNX export: the encoder family '" + family +
              "' has no ONNX exporter (families with one: " + families_in_words() +
              "; onnx::register_encoder_exporter adds one)");
}

}  // namespace sd::onnx
