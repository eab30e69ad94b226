#include "finetune/finetune_config.h"

#include "data/prompts.h"

namespace sd::finetune {

using nlohmann::json;

const json& finetune_config_defaults() {
  static const json defaults = [] {
    json d = train::train_config_defaults();
    for (const char* distill_only : {"init", "layer_decay", "loss_ignore_padding"}) d.erase(distill_only);
    // A decoder collapses at the encoder's learning rate: lower, warmed up and clipped.
    d.update({{"epochs", 4},          {"batch_size", 4},    {"lr", 1e-4},
              {"min_lr", 1e-6},       {"warmup_steps", 50}, {"clip_grad", 1.0},
              {"checkpoint_every", 500}});
    d.update({{"student", ""},         {"teacher_checkpoint", ""}, {"encoder_lr", 0.0},
              {"train_prompt_encoder", false}, {"prompts", "box,point,center"},
              {"prompts_per_image", 8}, {"refine_iters", 0},      {"target", "teacher"},
              {"loss", "focal_dice_iou"}, {"holdout", 0.2},       {"val_prompts", "box,point,center"},
              {"val_max_prompts", 16},  {"patience", 2}});
    return d;
  }();
  return defaults;
}

const std::map<std::string, std::string>& finetune_config_help() {
  static const std::map<std::string, std::string> help = [] {
    std::map<std::string, std::string> h;
    for (const auto& item : finetune_config_defaults().items())
      if (train::train_config_help().count(item.key())) h[item.key()] = train::train_config_help().at(item.key());
    h["data"] = "SA-1B folder(s) with the store's images' annotations (comma-separated)";
    h["student_model"] = "student encoder architecture when --student is not a run folder";
    h["seed"] = "seed of the prompts, the held-out split and the data order";
    h["student"] = "student weights: encoder state dict, full SAM checkpoint or run folder";
    h["teacher_checkpoint"] = "full SAM checkpoint of the teacher: its prompt encoder and mask decoder "
                              "make the targets and start the student's when it has none";
    h["encoder_lr"] = "learning rate of the student encoder (0: frozen, bitwise unchanged)";
    h["train_prompt_encoder"] = "train the prompt encoder too (else frozen)";
    h["prompts"] = "prompt kinds sampled for training: box, point, center, fgbg@D";
    h["prompts_per_image"] = "annotations sampled per image and epoch, each with one prompt";
    h["refine_iters"] = "SAM's iterative refinement: points added in the error region, fed back "
                        "with the previous low-res mask (0: off)";
    h["target"] = "teacher (its masks for the same prompts) or gt (the annotation masks)";
    h["loss"] = "focal_dice_iou (20 x focal + dice + IoU-head MSE, as SAM) or bce_dice";
    h["holdout"] = "share of the images held out for the mIoU check after each epoch";
    h["val_prompts"] = "prompt kinds of the held-out mIoU check";
    h["val_max_prompts"] = "annotations per held-out image in the mIoU check";
    h["patience"] = "epochs without a better held-out mIoU before stopping (0: never)";
    return h;
  }();
  return help;
}

FinetuneConfig finetune_config_from_json(const json& j) {
  FinetuneConfig c;
  c.loop = train::train_config_from_json(j);
  c.student = j.at("student").get<std::string>();
  c.teacher_checkpoint = j.at("teacher_checkpoint").get<std::string>();
  c.encoder_lr = j.at("encoder_lr").get<double>();
  c.train_prompt_encoder = j.at("train_prompt_encoder").get<bool>();
  c.prompts = j.at("prompts").get<std::string>();
  c.prompts_per_image = j.at("prompts_per_image").get<int64_t>();
  c.refine_iters = j.at("refine_iters").get<int64_t>();
  c.target = j.at("target").get<std::string>();
  c.loss = j.at("loss").get<std::string>();
  c.holdout = j.at("holdout").get<double>();
  c.val_prompts = j.at("val_prompts").get<std::string>();
  c.val_max_prompts = j.at("val_max_prompts").get<int64_t>();
  c.patience = j.at("patience").get<int64_t>();

  using train::require;
  require(!c.student.empty(), "student", j["student"], "give the student's weights (--student)");
  require(c.encoder_lr >= 0, "encoder_lr", j["encoder_lr"], "must be >= 0");
  require(c.prompts_per_image > 0, "prompts_per_image", j["prompts_per_image"], "must be > 0");
  require(c.refine_iters >= 0, "refine_iters", j["refine_iters"], "must be >= 0");
  require(c.target == "teacher" || c.target == "gt", "target", j["target"], "must be teacher or gt");
  require(c.loss == "focal_dice_iou" || c.loss == "bce_dice", "loss", j["loss"],
          "must be focal_dice_iou or bce_dice");
  require(c.holdout > 0 && c.holdout < 1, "holdout", j["holdout"], "must be in (0, 1)");
  require(c.val_max_prompts > 0, "val_max_prompts", j["val_max_prompts"], "must be > 0");
  require(c.patience >= 0, "patience", j["patience"], "must be >= 0");
  data::parse_prompt_specs(c.prompts, "prompts");  // sd::Error naming a kind that is not one
  data::parse_prompt_specs(c.val_prompts, "val_prompts");
  return c;
}

}  // namespace sd::finetune
