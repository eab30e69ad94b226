#include "data/stats.h"

#include <nlohmann/json.hpp>
#include <optional>

#include "data/image_reader.h"
#include "data/rle.h"

namespace sd::data {

DataStats compute_stats(const Dataset& dataset, const ImageDecoder& decoder, int threads,
                        bool strict, const std::function<void(size_t, size_t)>& progress) {
  ReadOptions options;
  options.workers = threads;
  options.records = true;
  options.input = false;  // decoding and the size check are what is verified
  options.strict = strict;
  ImageReader reader(dataset, decoded_images(decoder), options);
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
  nlohmann::json skipped = nlohmann::json::array();
  for (const Skip& s : stats.skipped) skipped.push_back({{"file", s.file}, {"reason", s.reason}});
  return {{"images", stats.images},
          {"annotations", stats.annotations},
          {"mask_pixels", stats.mask_pixels},
          {"skipped", skipped}};
}

}  // namespace sd::data
