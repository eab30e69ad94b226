#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace sd::distill {

struct TrainBench {
  std::string folder;  // SA-1B images
  int steps = 3;
  std::string device = "cpu";
  std::string amp = "off";
  int batch_size = 2;
};

// Training throughput of vit_t through the whole trainer (loader, store reads, forward, MSE,
// backward, AdamW, metrics) with random teacher embeddings, on the SA-1B images of `folder`
// from the store's image cache and from the JPEGs; on random cached pixels instead when this
// build cannot decode images or the folder has fewer images than a batch.
// {"train_img_per_s", "train_data_wait_pct", "train_steps", "train_setting"} and, on real
// images, {"train_jpeg_img_per_s", "train_jpeg_data_wait_pct"}.
nlohmann::json bench_train(const TrainBench& bench);

}  // namespace sd::distill
