#pragma once
#include <string>

#include "models/sam.h"

// `samdistill export --format onnx`: SAM's image encoder and SamOnnxModel decoder as ONNX
// models (opset 17) built from the modules' current weights (eval mode: batch norms folded).
namespace sd::onnx {

struct ExportOptions {
  bool return_single_mask = false;  // decoder: the best mask only (SamOnnxModel's option)
  bool int8 = false;                // weights of the products and convolutions as int8 (layers.h)
  // Initializers of at least this many bytes go to a side file (ONNX's external data,
  // Graph::serialize); 0: only in a model that would be over protobuf's 2 GiB (ViT-H's
  // encoder), and then every initializer of 1 KiB or more.
  size_t external_data = 0;
};

// encoder.onnx: input `image` 1 x 3 x S x S (S = sam.img_size(); normalised and padded as
// models/preprocess.h makes it), output `image_embeddings` 1 x 256 x 64 x 64, written by the
// exporter of `config`'s family (onnx/encoder_exporter.h; sam's image encoder is of `config`);
// sd::Error for a family without one. The model's bytes, every initializer inside.
std::string encoder_model(models::SamImpl& sam, const models::EncoderConfig& config,
                          const ExportOptions& options = {});
// decoder.onnx with SAM's ONNX decoder signature (sam_decoder.cpp).
std::string decoder_model(models::SamImpl& sam, const ExportOptions& options = {});

// Whether a model whose initializers hold this many bytes needs external data (the rest of the
// graph counted generously).
bool needs_external_data(size_t initializer_bytes);

struct Exported {
  std::string encoder_path, decoder_path;
  size_t encoder_bytes = 0, decoder_bytes = 0;              // with their external data, if any
  bool encoder_external = false, decoder_external = false;  // PATH.data written beside PATH
};
// Writes DIR/encoder.onnx and DIR/decoder.onnx (DIR made when missing), each atomically, and
// with external data DIR/encoder.onnx.data or DIR/decoder.onnx.data (a stale one removed).
Exported export_onnx(models::SamImpl& sam, const models::EncoderConfig& config,
                     const std::string& dir, const ExportOptions& options = {});

}  // namespace sd::onnx
