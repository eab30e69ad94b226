#pragma once
#include <string>

#include "distill/train_config.h"

namespace sd::distill {

struct TrainRequest {
  TrainConfig config;
  std::string run_dir;
  std::string resume;  // "": new run; "auto": newest valid checkpoint of run_dir; else a file
  std::string teacher;             // optional: the store must have been made by it
  std::string teacher_checkpoint;  // optional: ... and by these weights
};

struct TrainSummary {
  int64_t steps = 0;           // optimiser steps done in the whole run
  int64_t steps_this_call = 0;
  double first_loss = 0, last_loss = 0;  // mean loss of the first / last logged step
  double images_per_s = 0;
  double data_wait_pct = 0;    // share of wall time spent waiting for batches
  int64_t nonfinite_total = 0;
  std::string final_weights;   // RUN/final.pth
};

// Decoupled distillation: the student encoder learns the store's teacher embeddings with
// an MSE loss (see trainer.cpp). Writes RUN/config.json, metrics.jsonl, checkpoints/,
// final.pth and loss.png. sd::Error on bad input, naming the file, key or value.
TrainSummary train(const TrainRequest& request);

}  // namespace sd::distill
