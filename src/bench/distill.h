#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sd::bench {

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

// Runs `samdistill <args>` in `processes` worker processes (a launch) and waits; sd::Error when
// one fails.
using RunWorkers = std::function<void(const std::vector<std::string>& args, int processes)>;

// Data-parallel training of vit_t: 2 processes x 1 thread (on CUDA: one GPU each, NCCL)
// against 1 process x 1 thread on the same global batch (the cached store of bench_train, one
// warm-up step left out):
// {"dist_img_per_s_1x1", "dist_img_per_s_2x1", "dist_speedup", "dist_allreduce_s",
// "dist_allreduce_hidden_pct" (the share of the all-reduce that backward hid), "dist_setting"}.
nlohmann::json bench_data_parallel(const TrainBench& bench, const RunWorkers& run);

}  // namespace sd::bench
