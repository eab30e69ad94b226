#include "data/image_reader.h"

#include <ATen/ATen.h>

#include "models/preprocess.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/log.h"

namespace sd::data {
namespace {

int worker_count(int asked, size_t entries) {
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int workers = asked > 0 ? asked : cores;
  return static_cast<int>(std::min(static_cast<size_t>(workers), entries));
}

}  // namespace

namespace {

void check_size(const Entry& entry, const Record* record, int64_t height, int64_t width) {
  if (record && record->image.width > 0 &&
      (height != record->image.height || width != record->image.width))
    throw Error(entry.image_path + ": image is " + std::to_string(height) + "x" +
                std::to_string(width) + " (HxW) but its JSON says " +
                std::to_string(record->image.height) + "x" + std::to_string(record->image.width));
}

}  // namespace

at::Tensor read_image(const Entry& entry, const ImageDecoder& decoder, const Record* record) {
  const std::string bytes = read_image_bytes(entry);
  if (const auto declared = declared_image_size(bytes))  // before decoding, from the header
    check_size(entry, record, (*declared)[1], (*declared)[0]);
  at::Tensor rgb = decoder(bytes, entry.image_path);
  check_size(entry, record, rgb.size(0), rgb.size(1));
  return rgb;
}

ImageSource decoded_images(ImageDecoder decoder) {
  return [decoder = std::move(decoder)](const Entry& entry, const Record* record) {
    return read_image(entry, decoder, record);
  };
}

ImageReader::ImageReader(std::vector<const Entry*> entries, ImageSource source, ReadOptions options)
    : entries_(std::move(entries)), source_(std::move(source)), options_(options) {
  if (options_.workers < 0 || options_.ahead < 1)
    throw Error("image reader: workers must be >= 0 and images ahead >= 1");
  try {
    for (int i = worker_count(options_.workers, entries_.size()); i > 0; --i)
      threads_.emplace_back([this] { work(); });
  } catch (...) {  // no thread left running on a half-built reader
    stop();
    throw;
  }
}

ImageReader::ImageReader(const Dataset& dataset, ImageSource source, ReadOptions options)
    : ImageReader(
          [&] {
            std::vector<const Entry*> all;
            for (const Entry& entry : dataset.entries()) all.push_back(&entry);
            return all;
          }(),
          std::move(source), options) {}

ImageReader::~ImageReader() { stop(); }

void ImageReader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

ImageItem ImageReader::read(const Entry& entry) const {
  ImageItem item;
  item.entry = &entry;
  // The file at fault: the JSON while the record is read, then the image.
  const std::string image = entry.image_path.empty() ? entry.id : entry.image_path;
  std::string file = image;
  try {
    if (options_.records) {
      if (!entry.json_path.empty()) file = entry.json_path;
      item.record = load_record(entry);
      file = image;
    }
    const at::Tensor rgb = source_(entry, options_.records ? &item.record : nullptr);
    if (options_.records && item.record.image.width == 0) {  // a plain image: its size is read
      item.record.image.height = int(rgb.size(0));
      item.record.image.width = int(rgb.size(1));
    }
    if (options_.original) item.original = rgb;
    if (options_.resized) {
      item.resized = resize_longest_side(rgb);
      if (options_.input)
        item.input = {models::normalize_and_pad(item.resized).squeeze(0),
                      {rgb.size(0), rgb.size(1)},
                      {item.resized.size(0), item.resized.size(1)}};
    } else if (options_.input) {
      item.input = preprocess(rgb);
    }
    // A cached image comes resized: the record keeps the size its prompts are placed in.
    if (options_.records)
      item.input.original_size = {item.record.image.height, item.record.image.width};
  } catch (const std::exception& e) {  // sd::Error, or c10::Error / bad_alloc from a bad image
    item = ImageItem{};
    item.entry = &entry;
    item.skip = skip_of(file, e.what());
  }
  return item;
}

void ImageReader::work() {
  while (true) {
    size_t index;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] {
        return stopping_ || claimed_ >= entries_.size() ||
               claimed_ < taken_ + static_cast<size_t>(options_.ahead);
      });
      if (stopping_ || claimed_ >= entries_.size()) return;
      index = claimed_++;
    }
    ImageItem item = read(*entries_[index]);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.emplace(index, std::move(item));
    }
    changed_.notify_all();
  }
}

std::optional<ImageItem> ImageReader::next() {
  std::optional<ImageItem> item;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (taken_ >= entries_.size()) return std::nullopt;
    changed_.wait(lock, [&] { return ready_.count(taken_) > 0; });
    auto found = ready_.find(taken_++);
    item = std::move(found->second);
    ready_.erase(found);
  }
  changed_.notify_all();
  if (item->skip) {
    if (options_.strict) throw Error(describe(*item->skip));
    log::warn("skipping " + describe(*item->skip));
  }
  return item;
}

}  // namespace sd::data
