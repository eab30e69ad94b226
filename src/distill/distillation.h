#pragma once
#include <string>

#include "train/config.h"
#include "train/loop.h"

namespace sd::distill {

struct TrainRequest {
  train::TrainConfig config;
  train::RunStart run;
  std::string teacher;                  // optional: the store must have been made by it
  std::string teacher_checkpoint;       // optional: ... and by these weights
  distributed::Group* group = nullptr;  // data-parallel ranks (train/loop.h); null: one process
};

// Decoupled distillation: the student encoder learns the store's teacher embeddings with
// the config's loss (see distillation.cpp), in the run folder of train/loop.h. sd::Error on bad
// input, naming the file, key or value.
train::TrainSummary run_distillation(const TrainRequest& request);

}  // namespace sd::distill
