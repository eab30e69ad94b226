#include "onnx/export.h"

#include <torch/types.h>

#include <filesystem>

#include "onnx/encoder_exporter.h"
#include "onnx/sam.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace sd::onnx {

namespace {

const char* const kEncoderDoc =
    "SAM image encoder: normalised, zero-padded 1x3xSxS image -> embedding";
const char* const kDecoderDoc =
    "SAM prompt encoder + mask decoder with SamOnnxModel's inputs and outputs";

Graph encoder_graph(models::SamImpl& sam, const models::EncoderConfig& config,
                    const ExportOptions& options) {
  const std::string family = config.family().name();  // named: g++ 14 warns of a temporary
  const EncoderExporter& exporter = encoder_exporter(family);
  torch::NoGradGuard no_grad;
  sam.eval();
  Graph g(options.int8);
  const int64_t s = sam.img_size();
  g.input("image", Type::float32, {int64_t(1), int64_t(3), s, s});
  std::string embedding;
  {
    Graph::Scope scope(g, "image_encoder");
    embedding = exporter(g, *sam.image_encoder, config, "image");
  }
  const auto [h, w] = sam.prompt_encoder->image_embedding_size();
  g.output(embedding, "image_embeddings", Type::float32,
           {int64_t(1), sam.prompt_encoder->embed_dim(), h, w});
  return g;
}

Graph decoder_graph(models::SamImpl& sam, const ExportOptions& options) {
  torch::NoGradGuard no_grad;
  sam.eval();
  Graph g(options.int8);
  sam_onnx_model(g, sam, options.return_single_mask);
  return g;
}

// Writes `g` to `path`, its large initializers to PATH.data when `threshold` > 0 or the model
// would be over protobuf's limit (then threshold 1 KiB, onnx's own default). The bytes written
// and whether PATH.data was.
std::pair<size_t, bool> write_model(const Graph& g, const std::string& name, const std::string& doc,
                                    const std::string& path, size_t threshold) {
  const std::string data_path = path + ".data";
  if (threshold == 0 && needs_external_data(g.initializer_bytes())) threshold = 1024;
  if (threshold == 0) {
    const std::string model = g.serialize(name, doc);
    write_file_atomic(path, model);
    std::error_code ec;
    std::filesystem::remove(data_path, ec);  // an earlier export's, which nothing names now
    return {model.size(), false};
  }
  // The side file is written as the initializers are serialised, never whole in memory: the
  // ViT-H's is 2.5 GB.
  AtomicFile data(data_path);
  Graph::External external{std::filesystem::path(data_path).filename().string(), threshold,
                           [&data](std::string_view bytes) { data.write(bytes); }};
  const std::string model = g.serialize(name, doc, &external);
  data.commit();
  write_file_atomic(path, model);
  return {model.size() + external.size, true};
}

}  // namespace

bool needs_external_data(size_t initializer_bytes) {
  constexpr size_t kGraphMargin = size_t(64) << 20;  // nodes, names, the headers of tensors
  return initializer_bytes + kGraphMargin >= kProtobufLimit;
}

std::string encoder_model(models::SamImpl& sam, const models::EncoderConfig& config,
                          const ExportOptions& options) {
  return encoder_graph(sam, config, options).serialize("image_encoder", kEncoderDoc);
}

std::string decoder_model(models::SamImpl& sam, const ExportOptions& options) {
  return decoder_graph(sam, options).serialize("sam_decoder", kDecoderDoc);
}

Exported export_onnx(models::SamImpl& sam, const models::EncoderConfig& config,
                     const std::string& dir, const ExportOptions& options) {
  encoder_exporter(config.family().name());  // refused before anything is written
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("cannot create the folder '" + dir + "': " + ec.message());
  Exported e;
  e.encoder_path = dir + "/encoder.onnx";
  e.decoder_path = dir + "/decoder.onnx";
  std::tie(e.encoder_bytes, e.encoder_external) =
      write_model(encoder_graph(sam, config, options), "image_encoder", kEncoderDoc, e.encoder_path,
                  options.external_data);
  std::tie(e.decoder_bytes, e.decoder_external) =
      write_model(decoder_graph(sam, options), "sam_decoder", kDecoderDoc, e.decoder_path,
                  options.external_data);
  return e;
}

}  // namespace sd::onnx
