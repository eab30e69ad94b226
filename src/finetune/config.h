#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "finetune/mask_loss.h"
#include "io/config_table.h"
#include "train/config.h"

namespace sd::finetune {

// What the student's masks learn to match.
enum class Target { teacher, gt };

// The training loop's defaults for a decoder: train_config_table's, less for some keys.
train::TrainConfig decoder_loop_defaults();

// The initial values below are finetune_config_table's defaults (a test holds them to it).
struct FinetuneConfig {
  train::TrainConfig loop = decoder_loop_defaults();  // epochs, batch_size, lr, store, data, ...
  std::string student;             // weights: encoder dict, full SAM checkpoint or run folder
  std::string teacher_checkpoint;  // full SAM checkpoint: the teacher's prompt encoder + decoder
  double encoder_lr = 0;           // 0: the student encoder stays frozen
  bool train_prompt_encoder = false;
  std::string prompts = "box,point,center";  // kinds sampled for training
  int64_t prompts_per_image = 8;
  int64_t refine_iters = 0;  // SAM's iterative refinement: extra points in the error region
  Target target = Target::teacher;
  MaskLoss loss = MaskLoss::focal_dice_iou;
  double holdout = 0.2;  // share of the store's images held out for the mIoU check
  std::string val_prompts = "box,point,center";
  int64_t val_max_prompts = 16;  // annotations per held-out image
  int64_t patience = 2;          // epochs without a better held-out mIoU before stopping
};

// Every key of a fine-tuning config: the training loop's (train_config_table, less the
// distillation's own, with defaults for a decoder) and the fine-tuning's own.
const io::ConfigTable<FinetuneConfig>& finetune_config_table();

// Every key with its default (finetune_config_table().defaults()).
const nlohmann::json& finetune_config_defaults();

// As train::train_config_from_json; `loop.json` is the whole config written back.
FinetuneConfig finetune_config_from_json(const nlohmann::json& given,
                                         const std::string& source = "config");

}  // namespace sd::finetune

namespace sd {
template <>
struct WordsOf<finetune::Target> {
  static constexpr std::pair<finetune::Target, const char*> list[] = {
      {finetune::Target::teacher, "teacher"}, {finetune::Target::gt, "gt"}};
};
}  // namespace sd
