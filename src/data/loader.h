#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/image.h"
#include "data/image_reader.h"
#include "models/transforms.h"

namespace sd::data {

struct LoaderOptions {
  int batch_size = 1;
  int workers = 0;   // decoding threads; 0: one per core
  int prefetch = 4;  // batches read ahead of the consumer
  uint64_t seed = 0;
  bool shuffle = true;       // false: dataset order every epoch
  bool drop_last = false;    // drop a final batch smaller than batch_size
  bool read_records = true;  // parse each JSON (annotations) as well as the image
  bool pin_memory = false;   // page-locked batches (only when CUDA is available)
  bool strict = false;       // the first bad record throws instead of being skipped
  // Data-parallel ranks: this one reads the slice shard, shard + shards, shard + 2 shards, ...
  // of every epoch's order (DistributedSampler's), and positions count within the slice.
  int shard = 0, shards = 1;
};

struct Batch {
  int64_t epoch = 0;
  int64_t end_position = 0;  // position in the epoch's order after this batch: resume from here
  std::vector<std::string> ids;
  at::Tensor images;  // Bx3x1024x1024 float, normalised and padded
  std::vector<models::Size2> original_sizes, input_sizes;
  std::vector<Record> records;  // empty unless read_records
};

// The order of an epoch: a permutation of [0, n) that depends on (seed, epoch) only.
std::vector<int64_t> epoch_order(size_t n, uint64_t seed, int64_t epoch, bool shuffle);
// Every `shards`-th element of `order`, from the `shard`-th.
std::vector<int64_t> shard_of(const std::vector<int64_t>& order, int shard, int shards);

// Reads a dataset in batches through an ImageReader over the epoch's order. A batch is
// always the next batch_size usable records of that order, whatever the thread timing; bad
// records are skipped (logged, counted in skips()) or, with `strict`, thrown.
class Loader {
 public:
  Loader(Dataset dataset, ImageDecoder decoder, LoaderOptions options);
  Loader(Dataset dataset, ImageSource source, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Starts (or restarts) at `position` (a batch's end_position, 0 = start) of `epoch`.
  void start(int64_t epoch, int64_t position = 0);
  // The next batch of the current epoch; nullopt once it is exhausted.
  std::optional<Batch> next();

  std::vector<Skip> skips() const;  // every skip handed over, once per epoch that met it
  size_t skipped_records() const;   // the records skipped, each counted once
  size_t size() const { return dataset_.size(); }
  size_t shard_size() const;  // the records of this shard in an epoch

 private:
  Dataset dataset_;
  ImageSource source_;
  LoaderOptions options_;

  int64_t epoch_ = 0;
  int64_t position_ = 0;  // position in the epoch's order of the reader's next image
  std::unique_ptr<ImageReader> reader_;
  std::vector<Skip> skips_;
};

}  // namespace sd::data
