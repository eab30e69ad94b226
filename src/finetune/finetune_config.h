#pragma once
#include <nlohmann/json.hpp>
#include <map>
#include <string>

#include "train/train_config.h"

namespace sd::finetune {

// Every key of a fine-tuning config with its default: the training loop's keys (see
// train::train_config_defaults, with defaults for a decoder) and the fine-tuning's own.
const nlohmann::json& finetune_config_defaults();
const std::map<std::string, std::string>& finetune_config_help();

struct FinetuneConfig {
  train::TrainConfig loop;     // epochs, batch_size, lr, checkpoints, store, data, seed, ...
  std::string student;           // weights: encoder dict, full SAM checkpoint or run folder
  std::string teacher_checkpoint;  // full SAM checkpoint: the teacher's prompt encoder + decoder
  double encoder_lr = 0;         // 0: the student encoder stays frozen
  bool train_prompt_encoder = false;
  std::string prompts;           // kinds sampled for training, e.g. "box,point,center"
  int64_t prompts_per_image = 0;
  int64_t refine_iters = 0;      // SAM's iterative refinement: extra points in the error region
  std::string target;            // teacher | gt
  std::string loss;              // focal_dice_iou | bce_dice
  double holdout = 0;            // share of the store's images held out for the mIoU check
  std::string val_prompts;
  int64_t val_max_prompts = 0;   // annotations per held-out image
  int64_t patience = 0;          // epochs without a better held-out mIoU before stopping
};

FinetuneConfig finetune_config_from_json(const nlohmann::json& merged);

}  // namespace sd::finetune
