#include "onnx/export.h"

#include <torch/types.h>

#include <filesystem>

#include "onnx/sam.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace sd::onnx {

std::string encoder_model(models::SamImpl& sam, const ExportOptions& options) {
  torch::NoGradGuard no_grad;
  sam.eval();
  Graph g(options.int8);
  const int64_t s = sam.img_size();
  g.input("image", Type::float32, {int64_t(1), int64_t(3), s, s});
  std::string embedding;
  if (auto* tiny = dynamic_cast<models::TinyViT*>(sam.image_encoder.get())) {
    Graph::Scope scope(g, "image_encoder");
    embedding = tiny_vit(g, *tiny, "image");
  } else if (auto* vit = dynamic_cast<models::ImageEncoderViT*>(sam.image_encoder.get())) {
    Graph::Scope scope(g, "image_encoder");
    embedding = image_encoder_vit(g, *vit, "image", s);
  } else {
    throw Error("ONNX export: the image encoder is neither a TinyViT nor a ViT");
  }
  const auto [h, w] = sam.prompt_encoder->image_embedding_size();
  g.output(embedding, "image_embeddings", Type::float32,
           {int64_t(1), sam.prompt_encoder->embed_dim(), h, w});
  return g.serialize("image_encoder",
                     "SAM image encoder: normalised, zero-padded 1x3xSxS image -> embedding");
}

std::string decoder_model(models::SamImpl& sam, const ExportOptions& options) {
  torch::NoGradGuard no_grad;
  sam.eval();
  Graph g(options.int8);
  sam_onnx_model(g, sam, options.return_single_mask);
  return g.serialize("sam_decoder",
                     "SAM prompt encoder + mask decoder with SamOnnxModel's inputs and outputs");
}

Exported export_onnx(models::SamImpl& sam, const std::string& dir, const ExportOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("cannot create the folder '" + dir + "': " + ec.message());
  Exported e;
  e.encoder_path = dir + "/encoder.onnx";
  e.decoder_path = dir + "/decoder.onnx";
  const std::string encoder = encoder_model(sam, options);
  write_file_atomic(e.encoder_path, encoder);
  e.encoder_bytes = encoder.size();
  const std::string decoder = decoder_model(sam, options);
  write_file_atomic(e.decoder_path, decoder);
  e.decoder_bytes = decoder.size();
  return e;
}

}  // namespace sd::onnx
