#pragma once
#include <string>

#include "distributed/group.h"
#include "finetune/config.h"
#include "train/loop.h"

namespace sd::finetune {

struct FinetuneRequest {
  FinetuneConfig config;
  train::RunStart run;
  distributed::Group* group = nullptr;  // data-parallel ranks (train/loop.h); null: one process
};

// Fine-tunes the student's mask decoder (and optionally its prompt encoder and encoder) on the
// store's images, with the training loop of train::run_training: the run folder, exact
// resume and metrics are the trainer's. The validation score is the held-out mIoU vs the
// teacher (mean over val_prompts kinds), before training and after each epoch; final.pth is
// the full SAM state dict of the best-scoring weights.
train::TrainSummary finetune(const FinetuneRequest& request);

}  // namespace sd::finetune
