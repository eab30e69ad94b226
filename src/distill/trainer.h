#pragma once
#include <string>

#include "train/train_config.h"
#include "train/train_loop.h"

namespace sd::distill {

struct TrainRequest {
  train::TrainConfig config;
  train::RunStart run;
  std::string teacher;             // optional: the store must have been made by it
  std::string teacher_checkpoint;  // optional: ... and by these weights
  dist::Group* group = nullptr;    // data-parallel ranks (train_loop.h); null: one process
};

// Decoupled distillation: the student encoder learns the store's teacher embeddings with
// the config's loss (see trainer.cpp), in the run folder of train_loop.h. sd::Error on bad input,
// naming the file, key or value.
train::TrainSummary run_distillation(const TrainRequest& request);

}  // namespace sd::distill
