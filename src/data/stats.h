#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <vector>

#include "data/dataset.h"
#include "data/image.h"

namespace sd::data {

struct DataStats {
  int64_t images = 0;       // usable records
  int64_t annotations = 0;  // their masks
  int64_t mask_pixels = 0;  // sum of their decoded mask areas
  std::vector<Skip> skipped;
};

// Reads every record as the loader does, through the one ImageReader (JSON, every RLE, the whole
// image decoded and its size checked), `threads` at a time; a bad one is skipped with its file
// and reason, in dataset order. `strict`: the first bad record throws its sd::Error (the orphans
// of indexing are left to the caller). `progress(done, total)` is called after each record.
DataStats compute_stats(const Dataset& dataset, const ImageDecoder& decoder, int threads,
                        bool strict, const std::function<void(size_t, size_t)>& progress = {});

// {"images", "annotations", "mask_pixels", "skipped": [{"file", "reason"}]}
nlohmann::json to_json(const DataStats& stats);

}  // namespace sd::data
