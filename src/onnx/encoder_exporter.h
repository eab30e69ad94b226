#pragma once
#include <c10/util/Type.h>

#include <functional>
#include <string>

#include "models/encoder_family.h"
#include "models/image_encoder.h"
#include "onnx/graph.h"
#include "util/error.h"

// The registry of image-encoder exporters, keyed by the name of the encoder family
// (models::EncoderFamily::name()): one function per family writes its encoder's nodes. The
// families built in have one line each in encoder_exporter.cpp; a program built on the library
// (or a test) adds its own family's with register_encoder_exporter.
namespace sd::onnx {

// Writes an encoder's nodes into `g` (inside the scope "image_encoder"): the value name of the
// 1 x 3 x S x S preprocessed image -> the value name of its 1 x 256 x 64 x 64 embedding.
using EncoderExporter =
    std::function<std::string(Graph& g, models::ImageEncoder& encoder,
                              const models::EncoderConfig& config, const std::string& image)>;

// The EncoderExporter of a family whose encoders are `Encoder` modules, from
// `write(Graph&, Encoder&, const models::EncoderConfig&, const std::string& image)`; it refuses
// (sd::Error) an encoder of another module type.
template <class Encoder, class Write>
EncoderExporter exporter_of(Write write) {
  return [write](Graph& g, models::ImageEncoder& encoder, const models::EncoderConfig& config,
                 const std::string& image) {
    auto* m = dynamic_cast<Encoder*>(&encoder);
    if (!m)
      throw Error("ONNX export: the image encoder (of a config of the family '" +
                  config.family().name() + "') is not the " + c10::demangle_type<Encoder>() +
                  " its exporter writes");
    return write(g, *m, config, image);
  };
}

// Adds the exporter of the family named `family`; sd::Error when that family has one.
// Not thread-safe: register before exporting.
void register_encoder_exporter(const std::string& family, EncoderExporter exporter);
// The exporter of `family`; sd::Error naming it and the families that have one otherwise.
const EncoderExporter& encoder_exporter(const std::string& family);

}  // namespace sd::onnx
