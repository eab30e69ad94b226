#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "models/autocast.h"
#include "models/config.h"
#include "store/manifest.h"
#include "util/device.h"

namespace sd::store {

struct EmbedOptions {
  std::string teacher;             // preset or JSON config; "": what teacher_checkpoint holds
  std::string teacher_checkpoint;  // a file or run folder
  std::vector<std::string> data;   // image sources (data::Dataset::open)
  std::string images;              // the images of COCO files in `data` ("": each JSON's folder)
  data::SubsetSpec subset;
  std::string store;
  int batch_size = 1;
  DeviceChoice device = DeviceChoice::automatic;
  models::Amp amp = models::Amp::off;  // the teacher's forward; embeddings are stored as `dtype`
  DType dtype = DType::fp16;
  int shard_index = 0;  // --shard i/N: the subset's images at positions i, i+N, i+2N, ...
  int shard_count = 1;
  bool cache_images = false;  // also store each resized uint8 image
  // A bad record (image, JSON or RLE: each image's JSON is read and checked as `data stats`
  // does, so the same images count as good everywhere) is skipped and listed; with `strict`
  // it is an sd::Error naming the file.
  bool strict = false;
};

// "i/N" with 0 <= i < N; sd::Error naming the text otherwise.
void parse_shard(const std::string& text, EmbedOptions& options);

struct EmbedSummary {
  size_t selected = 0;      // images of this shard of the subset
  size_t already_done = 0;  // committed by an earlier run (or another shard's writer)
  size_t embedded = 0;
  std::vector<data::Skip> skipped;  // bad records (image, JSON or RLE) and orphans, with reasons
  uint64_t image_bytes = 0;         // record bytes of the cached images written
  double seconds = 0;               // the whole run
  double startup_seconds = 0;       // weights, data index and store opened, teacher built
  double teacher_seconds = 0;       // in the teacher's forward passes (reading and writing overlap)
  nlohmann::json to_json() const;
};

// Runs the frozen teacher (eval, no grad) over the shard's images not yet in the store and
// appends their embeddings, committing after each batch: running it again continues.
// Shows a progress line (images/s, ETA) on stderr.
EmbedSummary embed(const EmbedOptions& options);

// What a store made by this teacher, checkpoint and dtype records (SAM's preprocessing).
Manifest teacher_manifest(const models::EncoderConfig& config, const std::string& checkpoint,
                          DType dtype);

}  // namespace sd::store
