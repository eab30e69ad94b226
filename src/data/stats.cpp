#include "data/stats.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>

#include "data/image_reader.h"
#include "data/rle.h"

namespace sd::data {

DataStats compute_stats(const Dataset& dataset, const ImageDecoder& decoder, int threads,
                        bool strict, const std::function<void(size_t, size_t)>& progress) {
  ReadOptions read;  // the record and the whole image, as the loader reads them; no resizing
  read.workers = std::max(1, threads);
  read.ahead = 2 * read.workers;
  read.records = true;
  read.input = false;
  read.strict = strict;
  ImageReader reader(dataset, decoded_images(decoder), read);
  DataStats stats;
  size_t done = 0;
  while (std::optional<ImageItem> item = reader.next()) {
    if (item->skip) {
      stats.skipped.push_back(std::move(*item->skip));
    } else {
      ++stats.images;
      stats.annotations += static_cast<int64_t>(item->record.annotations.size());
      for (const Annotation& a : item->record.annotations)
        stats.mask_pixels += rle_area(a.segmentation);
    }
    if (progress) progress(++done, dataset.size());
  }
  return stats;
}

nlohmann::json to_json(const DataStats& stats) {
  return {{"images", stats.images},
          {"annotations", stats.annotations},
          {"mask_pixels", stats.mask_pixels},
          {"skipped", skips_json(stats.skipped)}};
}

}  // namespace sd::data
