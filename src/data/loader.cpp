#include "data/loader.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <set>

#include "util/error.h"
#include "util/random.h"

namespace sd::data {

std::vector<int64_t> epoch_order(size_t n, uint64_t seed, int64_t epoch, bool shuffle) {
  std::vector<int64_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = static_cast<int64_t>(i);
  if (!shuffle) return order;
  rng::SplitMix64 stream = rng::shuffle_stream(seed, epoch);
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[stream.below(i)]);  // Fisher-Yates
  return order;
}

std::vector<int64_t> shard_of(const std::vector<int64_t>& order, int shard, int shards) {
  std::vector<int64_t> out;
  for (size_t i = static_cast<size_t>(shard); i < order.size(); i += static_cast<size_t>(shards))
    out.push_back(order[i]);
  return out;
}

Loader::Loader(Dataset dataset, ImageDecoder decoder, LoaderOptions options)
    : Loader(std::move(dataset), decoded_images(std::move(decoder)), options) {}

Loader::Loader(Dataset dataset, ImageSource source, LoaderOptions options)
    : dataset_(std::move(dataset)), source_(std::move(source)), options_(options) {
  if (options_.batch_size < 1 || options_.prefetch < 1 || options_.workers < 0)
    throw Error("loader: batch size (" + std::to_string(options_.batch_size) + ") and prefetch (" +
                std::to_string(options_.prefetch) + ") must be >= 1, workers (" +
                std::to_string(options_.workers) + ") >= 0");
  if (options_.shards < 1 || options_.shard < 0 || options_.shard >= options_.shards)
    throw Error("loader: shard " + std::to_string(options_.shard) + " of " +
                std::to_string(options_.shards) + " does not exist");
}

size_t Loader::shard_size() const {
  const size_t n = dataset_.size(), shard = size_t(options_.shard),
               shards = size_t(options_.shards);
  return n > shard ? (n - shard + shards - 1) / shards : 0;
}

Loader::~Loader() = default;

void Loader::start(int64_t epoch, int64_t position) {
  reader_.reset();
  if (position < 0 || position > static_cast<int64_t>(shard_size()))
    throw Error("loader: start position " + std::to_string(position) + " outside the epoch of " +
                std::to_string(shard_size()) + " records");
  epoch_ = epoch;
  position_ = position;
  const std::vector<int64_t> order =
      shard_of(epoch_order(dataset_.size(), options_.seed, epoch, options_.shuffle), options_.shard,
               options_.shards);
  std::vector<const Entry*> entries;
  for (size_t i = static_cast<size_t>(position); i < order.size(); ++i)
    entries.push_back(&dataset_[static_cast<size_t>(order[i])]);
  ReadOptions read;
  read.workers = options_.workers;
  read.ahead = options_.prefetch * options_.batch_size;
  read.records = options_.read_records;
  read.strict = options_.strict;
  reader_ = std::make_unique<ImageReader>(std::move(entries), source_, read);
}

std::optional<Batch> Loader::next() {
  if (!reader_) start(epoch_, position_);
  std::vector<ImageItem> items;
  while (static_cast<int>(items.size()) < options_.batch_size) {
    std::optional<ImageItem> item = reader_->next();
    if (!item) break;
    ++position_;
    if (item->skip)
      skips_.push_back(*item->skip);
    else
      items.push_back(std::move(*item));
  }
  if (items.empty() || (options_.drop_last && static_cast<int>(items.size()) < options_.batch_size))
    return std::nullopt;

  Batch batch;
  batch.epoch = epoch_;
  batch.end_position = position_;
  auto tensor_options =
      at::TensorOptions().dtype(at::kFloat).pinned_memory(options_.pin_memory && at::hasCUDA());
  batch.images = at::empty({static_cast<int64_t>(items.size()), 3, 1024, 1024}, tensor_options);
  for (size_t i = 0; i < items.size(); ++i) {
    batch.images[static_cast<int64_t>(i)].copy_(items[i].input.pixels);
    batch.ids.push_back(items[i].entry->id);
    batch.original_sizes.push_back(items[i].input.original_size);
    batch.input_sizes.push_back(items[i].input.input_size);
    if (options_.read_records) batch.records.push_back(std::move(items[i].record));
  }
  return batch;
}

std::vector<Skip> Loader::skips() const { return skips_; }

size_t Loader::skipped_records() const {
  std::set<std::string> files;
  for (const Skip& s : skips_) files.insert(s.file);
  return files.size();
}

}  // namespace sd::data
