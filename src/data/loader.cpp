#include "data/loader.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include "data/preprocess.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/log.h"
#include "util/random.h"

namespace sd::data {

struct Loader::Item {
  std::string id;
  PreprocessedImage image;
  Record record;
  std::optional<Skip> skip;
};

at::Tensor read_image(const Entry& entry, const ImageDecoder& decoder, const Record* record) {
  at::Tensor rgb = decoder(read_file(entry.image_path), entry.image_path);
  if (record && (rgb.size(0) != record->image.height || rgb.size(1) != record->image.width))
    throw Error(entry.image_path + ": image is " + std::to_string(rgb.size(0)) + "x" +
                std::to_string(rgb.size(1)) + " (HxW) but its JSON says " +
                std::to_string(record->image.height) + "x" + std::to_string(record->image.width));
  return rgb;
}

std::vector<int64_t> epoch_order(size_t n, uint64_t seed, int64_t epoch, bool shuffle) {
  std::vector<int64_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = static_cast<int64_t>(i);
  if (!shuffle) return order;
  rng::SplitMix64 stream = rng::shuffle_stream(seed, epoch);
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[stream.below(i)]);  // Fisher-Yates
  return order;
}

Loader::Loader(Dataset dataset, ImageDecoder decoder, LoaderOptions options)
    : Loader(std::move(dataset),
             [decoder = std::move(decoder)](const Entry& entry, const Record* record) {
               return read_image(entry, decoder, record);
             },
             options) {}

Loader::Loader(Dataset dataset, ImageSource source, LoaderOptions options)
    : dataset_(std::move(dataset)), source_(std::move(source)), options_(options) {
  if (options_.batch_size < 1 || options_.workers < 1 || options_.prefetch < 1)
    throw Error("loader: batch size, workers and prefetch must be >= 1");
}

Loader::~Loader() { stop(); }

void Loader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void Loader::start(int64_t epoch, int64_t position) {
  stop();
  if (position < 0 || position > static_cast<int64_t>(dataset_.size()))
    throw Error("loader: start position " + std::to_string(position) + " outside the epoch of " +
                std::to_string(dataset_.size()) + " records");
  epoch_ = epoch;
  order_ = epoch_order(dataset_.size(), options_.seed, epoch, options_.shuffle);
  consumed_ = claimed_ = position;
  ready_.clear();
  stopping_ = false;
  for (int i = 0; i < options_.workers; ++i) threads_.emplace_back([this] { work(); });
}

Loader::Item Loader::load(int64_t position) const {
  const Entry& entry = dataset_[static_cast<size_t>(order_[position])];
  Item item;
  item.id = entry.id;
  try {
    if (options_.read_records) item.record = load_record(entry);
    item.image = preprocess(source_(entry, options_.read_records ? &item.record : nullptr));
  } catch (const std::exception& e) {  // sd::Error, or c10::Error / bad_alloc from a bad image
    item.skip = Skip{entry.image_path, e.what()};
  }
  return item;
}

void Loader::work() {
  const int64_t window = static_cast<int64_t>(options_.prefetch) * options_.batch_size;
  const int64_t n = static_cast<int64_t>(order_.size());
  while (true) {
    int64_t position;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || claimed_ >= n || claimed_ < consumed_ + window; });
      if (stopping_ || claimed_ >= n) return;
      position = claimed_++;
    }
    auto item = std::make_shared<Item>(load(position));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_[position] = std::move(item);
    }
    changed_.notify_all();
  }
}

std::optional<Batch> Loader::next() {
  if (threads_.empty()) start(epoch_, consumed_);
  const int64_t n = static_cast<int64_t>(order_.size());
  std::vector<std::shared_ptr<Item>> items;
  while (static_cast<int>(items.size()) < options_.batch_size) {
    std::shared_ptr<Item> item;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (consumed_ >= n) break;
      changed_.wait(lock, [&] { return ready_.count(consumed_) > 0; });
      item = std::move(ready_[consumed_]);
      ready_.erase(consumed_++);
    }
    changed_.notify_all();
    if (item->skip) {
      if (options_.strict) throw Error(item->skip->reason);
      log::warn("skipping a record: " + item->skip->reason);
      std::lock_guard<std::mutex> lock(mutex_);
      skips_.push_back(*item->skip);
      continue;
    }
    items.push_back(std::move(item));
  }
  if (items.empty() || (options_.drop_last && static_cast<int>(items.size()) < options_.batch_size))
    return std::nullopt;

  Batch batch;
  batch.epoch = epoch_;
  batch.end_position = consumed_;
  auto tensor_options = at::TensorOptions().dtype(at::kFloat).pinned_memory(options_.pin_memory && at::hasCUDA());
  batch.images = at::empty({static_cast<int64_t>(items.size()), 3, 1024, 1024}, tensor_options);
  for (size_t i = 0; i < items.size(); ++i) {
    batch.images[static_cast<int64_t>(i)].copy_(items[i]->image.pixels);
    batch.ids.push_back(items[i]->id);
    batch.original_sizes.push_back(items[i]->image.original_size);
    batch.input_sizes.push_back(items[i]->image.input_size);
    if (options_.read_records) batch.records.push_back(std::move(items[i]->record));
  }
  return batch;
}

std::vector<Skip> Loader::skips() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return skips_;
}

}  // namespace sd::data
