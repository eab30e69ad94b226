#pragma once
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <nlohmann/json.hpp>
#include <limits>
#include <optional>
#include <string>

namespace sd::train {

// Where a run stands; everything beyond the weights and the optimiser that an exact
// resume needs.
struct TrainProgress {
  int64_t step = 0;      // optimiser steps done
  int64_t epoch = 0;     // current epoch (0-based)
  int64_t position = 0;  // samples of this epoch already consumed
  double loss_scale = 65536.0;  // fp16 dynamic loss scale (see loss_scale.h)
  int64_t loss_scale_good_steps = 0;
  int64_t nonfinite_in_row = 0;
  int64_t nonfinite_total = 0;
  bool validated = false;  // the objective gives held-out scores (objective.h)
  double best_score = -std::numeric_limits<double>::infinity();  // held-out score, or -mean loss
  int64_t bad_epochs = 0;  // epochs in a row without a better score
  double epoch_loss = 0;   // sum of this epoch's finite step losses so far
  int64_t epoch_steps = 0; // ... and their number
};

struct TrainCheckpoint {
  TrainProgress progress;
  nlohmann::json config;  // the effective config of the run
  std::string store_id;   // identity of the embedding store trained on
};

// Writes model weights (official key names, under "model"), the optimiser state, the
// progress, the generator states of the CPU and of every CUDA device present, the config
// and the store identity into one torch.save-format file, atomically.
void save_train_checkpoint(const std::string& path, const torch::nn::Module& model,
                           torch::optim::Optimizer& optimizer, const TrainCheckpoint& meta);

// Restores what save_train_checkpoint wrote into `model` and `optimizer` (built the same
// way) and the generator states; returns the progress, config and store identity.
// sd::Error naming the file when it is damaged, partial or of another model.
TrainCheckpoint load_train_checkpoint(const std::string& path, torch::nn::Module& model,
                                      torch::optim::Optimizer& optimizer);

// Reads only the config/progress of a checkpoint (to validate it cheaply).
TrainCheckpoint peek_train_checkpoint(const std::string& path);

// File name of the checkpoint written after `step` optimiser steps.
std::string checkpoint_name(int64_t step);  // "step-00001200.pth"

}  // namespace sd::train
