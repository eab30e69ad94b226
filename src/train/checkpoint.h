#pragma once
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <string>

#include "io/train_checkpoint_file.h"

// Training checkpoints (their file: io/train_checkpoint_file.h) from and into a model and
// its optimiser.
namespace sd::train {

using io::TrainCheckpoint;
using io::TrainProgress;

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

}  // namespace sd::train
