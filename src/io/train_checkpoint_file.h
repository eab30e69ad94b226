#pragma once
#include <ATen/core/Tensor.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/state_dict.h"

// The file of a samdistill training checkpoint: one torch.save dict holding "format",
// "model" (the weights under their official key names), "optimizer" (the optimiser's own
// serialisation, as bytes), "progress", "rng_cpu", "rng_cuda" (one state per
// CUDA device), "config" (JSON text) and "store_id".
// train/train_checkpoint.h fills it from a model and an optimiser and restores them from it.
namespace sd::io {

// Where a run stands; everything beyond the weights and the optimiser that an exact
// resume needs.
struct TrainProgress {
  int64_t step = 0;             // optimiser steps done
  int64_t epoch = 0;            // current epoch (0-based)
  int64_t position = 0;         // samples of this epoch already consumed
  double loss_scale = 65536.0;  // fp16 dynamic loss scale (see train/loss_scale.h)
  int64_t loss_scale_good_steps = 0;
  int64_t nonfinite_in_row = 0;
  int64_t nonfinite_total = 0;
  bool validated = false;  // the objective gives held-out scores (train/objective.h)
  double best_score = -std::numeric_limits<double>::infinity();  // held-out score, or -mean loss
  int64_t bad_epochs = 0;   // epochs in a row without a better score
  double epoch_loss = 0;    // sum of this epoch's finite step losses so far
  int64_t epoch_steps = 0;  // ... and their number
};

struct TrainCheckpoint {
  TrainProgress progress;
  nlohmann::json config;  // the effective config of the run
  std::string store_id;   // identity of the embedding store trained on
  // A data-parallel run: each rank's position in its slice of the epoch's order (rank 0's is
  // progress.position too); empty for one process.
  std::vector<int64_t> rank_positions;
};

struct TrainCheckpointFile {
  TrainCheckpoint meta;
  StateDict model;
  at::Tensor optimizer;              // uint8 bytes
  at::Tensor rng_cpu;                // the CPU generator's state
  std::vector<at::Tensor> rng_cuda;  // each CUDA device's, as torch.cuda.get_rng_state_all()
};

// Written atomically (see util/atomic_file.h).
void write_train_checkpoint(const std::string& path, const TrainCheckpointFile& file);

// sd::Error naming the file when it is damaged, partial or not a training checkpoint.
TrainCheckpointFile read_train_checkpoint(const std::string& path);

// The config and progress alone (to check that a checkpoint reads back).
TrainCheckpoint peek_train_checkpoint(const std::string& path);

// Whether `top`, a file's value (io::read_torch_file), is a training checkpoint, and the
// checkpoint it holds (read_train_checkpoint's errors, naming `path`).
bool is_train_checkpoint(const c10::IValue& top);
TrainCheckpointFile train_checkpoint_of(const c10::IValue& top, const std::string& path);

}  // namespace sd::io
