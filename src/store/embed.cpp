#include "store/embed.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <filesystem>

#include "data/image.h"
#include "data/image_reader.h"
#include "data/loader.h"
#include "data/preprocess.h"
#include "io/checkpoint.h"
#include "io/weights.h"
#include "models/preprocess.h"
#include "models/sam_weights.h"
#include "store/reader.h"
#include "store/writer.h"
#include "util/clock.h"
#include "util/device.h"
#include "util/error.h"
#include "util/log.h"
#include "util/progress.h"
#include "util/sha256.h"
#include "util/stop_signal.h"

namespace fs = std::filesystem;

namespace sd::store {
namespace {

// The reader's next `count` images that decoded, resized and normalised; the bad ones go to
// the summary.
std::vector<data::ImageItem> next_batch(data::ImageReader& reader, size_t count,
                                        EmbedSummary& summary) {
  std::vector<data::ImageItem> batch;
  for (size_t i = 0; i < count; ++i) {
    data::ImageItem item = *reader.next();
    if (item.skip)
      summary.skipped.push_back(*item.skip);
    else
      batch.push_back(std::move(item));
  }
  return batch;
}

// The images of `shard` less those already done. An image whose id is too long for a store
// key (a deep plain folder) is skipped, named.
std::vector<const data::Entry*> select(const data::Dataset& shard, const Reader& done,
                                       const EmbedOptions& options, EmbedSummary& summary) {
  std::vector<const data::Entry*> todo;
  for (const data::Entry& entry : shard.entries()) {
    ++summary.selected;
    const std::string& key = entry.id;
    if (key.size() > kMaxKeyBytes) {
      summary.skipped.push_back(
          {entry.image_path, "its id '" + key + "' is longer than a store key (" +
                                 std::to_string(kMaxKeyBytes) + " bytes): move it up"});
      if (options.strict) throw Error(data::describe(summary.skipped.back()));
      continue;
    }
    if (done.find(Kind::embedding, key) && (!options.cache_images || done.find(Kind::image, key)))
      ++summary.already_done;
    else
      todo.push_back(&entry);
  }
  return todo;
}

// Takes the weights read by value: they are freed once loaded.
std::shared_ptr<models::ImageEncoder> frozen_teacher(const models::EncoderConfig& config,
                                                     io::Weights weights, at::Device device) {
  auto teacher = models::load_image_encoder(config, weights);
  teacher->eval();
  teacher->to(device);
  for (auto& p : teacher->parameters()) p.set_requires_grad(false);
  return teacher;
}

// Appends what the store lacks of each image (embedding, cached image) and commits.
void write_batch(const std::vector<data::ImageItem>& batch, const at::Tensor& embeddings,
                 const Reader& before, const EmbedOptions& options, Writer& writer,
                 EmbedSummary& summary) {
  for (size_t i = 0; i < batch.size(); ++i) {
    const std::string& key = batch[i].entry->id;
    if (!before.find(Kind::embedding, key))
      writer.put(encode_embedding(key, embeddings[int64_t(i)], options.dtype));
    if (options.cache_images && !before.find(Kind::image, key)) {
      Encoded image = encode_image(key, batch[i].resized);
      summary.image_bytes += record_bytes(key.size(), image.info.payload_bytes);
      writer.put(image);
    }
  }
  writer.commit();
  summary.embedded += batch.size();
}

}  // namespace

void parse_shard(const std::string& text, EmbedOptions& options) {
  auto invalid = [&] { return Error("--shard '" + text + "' is not i/N with 0 <= i < N"); };
  auto number = [&](const std::string& digits) {
    if (digits.empty() || digits.size() > 6 ||
        digits.find_first_not_of("0123456789") != std::string::npos)
      throw invalid();
    return std::stoi(digits);
  };
  size_t slash = text.find('/');
  if (slash == std::string::npos) throw invalid();
  options.shard_index = number(text.substr(0, slash));
  options.shard_count = number(text.substr(slash + 1));
  if (options.shard_index >= options.shard_count) throw invalid();
}

nlohmann::json EmbedSummary::to_json() const {
  return {{"selected", selected},
          {"already_done", already_done},
          {"embedded", embedded},
          {"skipped", data::skips_json(skipped)},
          {"cached_image_bytes", image_bytes},
          {"seconds", seconds},
          {"startup_seconds", startup_seconds},
          {"teacher_seconds", teacher_seconds},
          {"images_per_s", seconds > 0 ? embedded / seconds : 0.0}};
}

Manifest teacher_manifest(const models::EncoderConfig& config, const std::string& checkpoint,
                          DType dtype) {
  Manifest m;
  m.teacher = models::to_json(config);
  m.checkpoint_sha256 = sha256_file(checkpoint);
  m.checkpoint_name = fs::path(checkpoint).filename().string();
  // What data::resize_longest_side and models::normalize_and_pad apply.
  m.preprocess = {{"img_size", 1024},
                  {"resize", "longest side, PIL bilinear with antialiasing, int(x * scale + 0.5)"},
                  {"pixel_mean", models::kPixelMean},
                  {"pixel_std", models::kPixelStd},
                  {"pad", "zeros, bottom-right"}};
  m.dtype = dtype;
  return m;
}

EmbedSummary embed(const EmbedOptions& options) {
  auto start = std::chrono::steady_clock::now();
  if (options.batch_size < 1) throw Error("--batch-size must be >= 1");
  at::Device device = resolve_device(options.device);
  io::Weights weights = io::read_weights(options.teacher_checkpoint);
  const models::EncoderConfig config =
      models::encoder_config_of(weights, options.teacher, "--teacher");
  Manifest manifest = teacher_manifest(config, weights.file, options.dtype);
  EmbedSummary summary;
  const data::Dataset dataset =
      data::Dataset::open(options.data, options.images, &summary.skipped).subset(options.subset);
  if (dataset.size() == 0) throw Error("embed: no images selected from --data");
  if (options.strict && !summary.skipped.empty())
    throw Error(data::describe(summary.skipped.front()));
  Writer writer(options.store, manifest, shard_part_name(options.shard_index, options.shard_count));
  const Reader before(options.store);  // committed by earlier runs and other shards' writers
  const data::Dataset shard =
      dataset.interleaved(size_t(options.shard_index), size_t(options.shard_count));
  const std::vector<const data::Entry*> todo = select(shard, before, options, summary);
  log::info("embed: " + std::to_string(summary.selected) + " images in shard " +
            std::to_string(options.shard_index) + "/" + std::to_string(options.shard_count) + ", " +
            std::to_string(summary.already_done) + " already in '" + options.store + "'");

  auto teacher = frozen_teacher(config, std::move(weights), device);
  at::NoGradGuard no_grad;
  const size_t batch_size = size_t(options.batch_size);
  data::ReadOptions read;  // the next batch is read while the teacher runs on this one
  read.ahead = options.batch_size;
  read.records = true;  // an image whose JSON is bad is skipped here as everywhere else
  read.resized = true;
  read.strict = options.strict;
  data::ImageReader reader(todo, data::decoded_images(data::default_image_decoder()), read);
  Progress progress("embed", int64_t(todo.size()));
  summary.startup_seconds = seconds_since(start);
  for (size_t first = 0; first < todo.size(); first += batch_size) {
    const size_t count = std::min(batch_size, todo.size() - first);
    const std::vector<data::ImageItem> batch = next_batch(reader, count, summary);
    if (!batch.empty()) {
      std::vector<at::Tensor> pixels;
      for (const data::ImageItem& image : batch) pixels.push_back(image.input.pixels);
      at::Tensor embeddings;
      {
        const auto forward_start = std::chrono::steady_clock::now();
        models::AutocastScope autocast(options.amp, device);
        embeddings = teacher->forward(at::stack(pixels).to(device)).to(at::kCPU, at::kFloat);
        summary.teacher_seconds += seconds_since(forward_start);
      }
      write_batch(batch, embeddings, before, options, writer, summary);
    }
    progress.update(int64_t(first + count));
    if (const int signal = stop_signal(); signal != 0 && first + count < todo.size())
      throw Stopped(signal, signal_name(signal) + ": stopped after " +
                                std::to_string(summary.embedded) + " of " +
                                std::to_string(todo.size()) + " images, all committed to '" +
                                options.store + "'. The same command continues where it stopped");
  }
  progress.finish();
  summary.seconds = seconds_since(start);
  return summary;
}

}  // namespace sd::store
