#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "train/param_groups.h"

namespace sd::train {

// A held-out score and its parts (for finetune, the mIoU of each prompt kind), recorded in the
// run's metrics as val_score and val_by_kind.
struct Validation {
  double score = 0;
  std::map<std::string, double> by_kind;
};

// When a validation happens: the run folder (where the objective may write its held-out
// report), the optimiser steps done, and words for people ("before training", "after epoch 0",
// "after step 3").
struct ValidationPoint {
  std::string run_dir;
  int64_t step = 0;
  std::string when;
  bool writes = true;  // false on the ranks but 0 of a data-parallel run: no report from them
};

// What a training run optimises. The loop (train/loop.h) does everything else: schedule,
// accumulation, loss scaling, clipping, non-finite steps, checkpoints, resume, metrics,
// the best checkpoint and final.pth. Distillation (distill/distillation.cpp) and decoder
// fine-tuning (finetune/) are its two objectives.
class Objective {
 public:
  virtual ~Objective() = default;

  // What checkpoints hold (official key names) and final.pth is the state dict of.
  virtual torch::nn::Module& model() = 0;
  // The trained parameters, grouped for AdamW (frozen parameters are in no group).
  virtual const std::vector<ParamGroup>& param_groups() const = 0;
  // The images of an epoch, where their pixels come from, and whether a batch needs the
  // annotations.
  virtual const data::Dataset& dataset() const = 0;
  virtual data::ImageSource image_source() const = 0;
  virtual bool needs_records() const = 0;

  // Train mode for the trained parts (frozen ones stay in eval mode); called before each step.
  virtual void train_mode() = 0;
  // The mean loss of a micro-batch, differentiable, in float32 (mixed precision inside).
  virtual at::Tensor loss(const data::Batch& batch) = 0;
  // A held-out score, higher is better, before training and after each epoch: it picks the
  // best checkpoint and final.pth (the best weights) and may stop the run early. nullopt
  // (always, or never): the epoch's mean training loss picks the best checkpoint and
  // final.pth is the last weights. `at` says when, and the run folder the objective may write
  // its held-out report into (io::RunPaths::heldout()).
  virtual std::optional<Validation> validate(const ValidationPoint& /*at*/) { return std::nullopt; }
  // The weights validated last (at `at`) are now the best: final.pth holds them unless better
  // ones come. Called right after that validate(), on every rank.
  virtual void kept_best(const ValidationPoint& /*at*/) {}
  // "vit_t student encoder", for the log.
  virtual std::string description() const = 0;
};

}  // namespace sd::train
