#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace sd::bench {

// Throughput of the data pipeline on `folder` (default: the repository's data/sample):
// {"preprocess_img_per_s": decode + resize + normalise + pad with all cores,
//  "preprocess_img_per_s_1thread": the same on one thread, "rle_masks_per_s": RLE string ->
//  HxW mask, one thread, "threads": the count used for the first}, and the same images read
//  from a tar of them vs the folder (built with libarchive): "folder_read_img_per_s",
//  "tar_read_img_per_s" (read + decode, one thread), "tar_vs_folder" (their ratio),
//  "folder_bytes_img_per_s", "tar_bytes_img_per_s" (the bytes alone), "tar_index_s_per_gb"
//  (indexing the tar, seconds per GB of tar), "tar_bytes".
nlohmann::json bench_data(const std::string& folder);

}  // namespace sd::bench
