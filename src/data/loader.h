#pragma once
#include <ATen/core/Tensor.h>

#include <condition_variable>
#include <functional>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "data/image.h"
#include "models/transforms.h"

namespace sd::data {

struct LoaderOptions {
  int batch_size = 1;
  int workers = 2;         // decoding threads
  int prefetch = 4;        // batches prepared ahead of the consumer
  uint64_t seed = 0;
  bool shuffle = true;     // false: dataset order every epoch
  bool drop_last = false;  // drop a final batch smaller than batch_size
  bool read_records = true;  // parse each JSON (annotations) as well as the image
  bool pin_memory = false;   // page-locked batches (only when CUDA is available)
  bool strict = false;       // the first bad record throws instead of being skipped
};

struct Batch {
  int64_t epoch = 0;
  int64_t end_position = 0;  // position in the epoch's order after this batch: resume from here
  std::vector<std::string> ids;
  at::Tensor images;  // Bx3x1024x1024 float, normalised and padded
  std::vector<models::Size2> original_sizes, input_sizes;
  std::vector<Record> records;  // empty unless read_records
};

// Reads and decodes an entry's image; sd::Error naming the file when it is bad or, given its
// record, when its size differs from the record's.
at::Tensor read_image(const Entry& entry, const ImageDecoder& decoder, const Record* record);

// Where the loader gets an entry's uint8 HxWx3 RGB pixels (the record is null unless the
// loader reads records): decoded files (read_image), or images cached elsewhere (the
// embedding store). An image already at its SAM size passes the resize unchanged.
using ImageSource = std::function<at::Tensor(const Entry& entry, const Record* record)>;

// The order of an epoch: a permutation of [0, n) that depends on (seed, epoch) only.
std::vector<int64_t> epoch_order(size_t n, uint64_t seed, int64_t epoch, bool shuffle);

// Reads a dataset in batches with worker threads and a bounded prefetch queue. A batch is
// always the next batch_size usable records of the epoch's order, whatever the thread
// timing; bad records are skipped (logged, counted in skips()) or, with `strict`, thrown.
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

  std::vector<Skip> skips() const;
  size_t size() const { return dataset_.size(); }

 private:
  struct Item;
  void stop();
  void work();
  Item load(int64_t position) const;

  Dataset dataset_;
  ImageSource source_;
  LoaderOptions options_;

  int64_t epoch_ = 0;
  std::vector<int64_t> order_;
  int64_t consumed_ = 0;  // next position the consumer takes
  int64_t claimed_ = 0;   // next position a worker takes
  bool stopping_ = false;
  std::map<int64_t, std::shared_ptr<Item>> ready_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::thread> threads_;
  std::vector<Skip> skips_;
};

}  // namespace sd::data
