#pragma once
#include <ATen/core/Tensor.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "data/image.h"
#include "data/preprocess.h"

namespace sd::data {

// Reads and decodes an entry's image; sd::Error naming the file when it is bad or, given its
// record, when its size differs from the record's (a plain image's record has no size).
at::Tensor read_image(const Entry& entry, const ImageDecoder& decoder, const Record* record);

// Where a reader gets an entry's uint8 HxWx3 RGB pixels (the record is null unless the
// reader parses records): decoded files (decoded_images), or images cached elsewhere (the
// embedding store). An image already at its SAM size passes the resize unchanged.
using ImageSource = std::function<at::Tensor(const Entry& entry, const Record* record)>;
ImageSource decoded_images(ImageDecoder decoder);  // read_image with this decoder

struct ReadOptions {
  int workers = 0;  // decoding threads; 0: one per core
  int ahead = 4;    // images being read or waiting for the consumer, at most
  // Parse each entry's JSON too (and check the image's size against it; a plain image's
  // record gets the size of the pixels the source gave). The input's original_size is then the
  // record's, also when the source gives the image already resized (the store's image cache).
  bool records = false;
  bool resized = false;   // keep the uint8 image resized to SAM's size (longest side 1024)
  bool input = true;      // make SAM's input: 3x1024x1024 float, normalised and padded
  bool strict = false;    // a bad image or record throws from next() instead of being skipped
  bool original = false;  // keep the decoded uint8 HxWx3 image as the source gave it
};

// One entry as read. A bad one has `skip` set and nothing else but `entry`.
struct ImageItem {
  const Entry* entry = nullptr;
  Record record;             // with ReadOptions::records
  at::Tensor resized;        // with ReadOptions::resized
  PreprocessedImage input;   // with ReadOptions::input
  at::Tensor original;       // with ReadOptions::original
  std::optional<Skip> skip;  // the file at fault and why
};

// Reads entries on worker threads (record, pixels, resize, normalisation) and hands them over
// in the order asked, whatever the thread timing. Every pipeline that reads images uses it, so
// a bad image or record is reported the same way everywhere: logged (describe) and handed over
// with `skip` set, or with `strict` thrown as sd::Error with the same words, when the consumer
// reaches it. The skip names the JSON when the record is bad, else the image.
class ImageReader {
 public:
  // The entries must outlive the reader. Workers start at once.
  ImageReader(std::vector<const Entry*> entries, ImageSource source, ReadOptions options);
  ImageReader(const Dataset& dataset, ImageSource source, ReadOptions options);  // all, in order
  // Stops the workers; each first finishes the image it is reading.
  ~ImageReader();
  ImageReader(const ImageReader&) = delete;
  ImageReader& operator=(const ImageReader&) = delete;

  // The next entry in order; nullopt after the last.
  std::optional<ImageItem> next();

 private:
  void stop();
  void work();
  ImageItem read(const Entry& entry) const;

  const std::vector<const Entry*> entries_;
  const ImageSource source_;
  const ReadOptions options_;

  size_t taken_ = 0;    // the next index the consumer takes
  size_t claimed_ = 0;  // the next index a worker reads
  bool stopping_ = false;
  std::map<size_t, ImageItem> ready_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::thread> threads_;
};

}  // namespace sd::data
