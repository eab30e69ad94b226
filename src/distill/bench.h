#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace sd::distill {

// Training throughput of vit_t at batch 2 on the CPU through the whole trainer (loader,
// store reads, forward, MSE, backward, AdamW, metrics), on the SA-1B images of `folder`
// with random teacher embeddings: from the store's image cache and from the JPEGs.
// {"train_img_per_s", "train_data_wait_pct", "train_jpeg_img_per_s",
//  "train_jpeg_data_wait_pct", "train_steps"}.
nlohmann::json bench_train(const std::string& folder, int steps);

}  // namespace sd::distill
