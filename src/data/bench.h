#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace sd::data {

// Throughput of the data pipeline on `folder` (default: the repository's data/sample):
// {"preprocess_img_per_s": decode + resize + normalise + pad with all cores,
//  "preprocess_img_per_s_1thread": the same on one thread, "rle_masks_per_s": RLE string ->
//  HxW mask, one thread, "threads": the count used for the first}.
nlohmann::json bench_data(const std::string& folder);

}  // namespace sd::data
