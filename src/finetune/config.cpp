#include "finetune/config.h"

#include "data/prompts.h"

namespace sd::finetune {

using io::any_value;
using io::field;
using io::non_negative;
using io::positive;
using C = FinetuneConfig;

namespace {

// parse_prompt_specs' sd::Error says what is wrong with the list. Training prompts are single
// prompts: `everything` (whole mask sets) only scores the held-out set.
auto prompt_kinds(const char* key, bool training) {
  return io::Check{[key, training](const std::string& v, const C&) {
                     const std::vector<data::PromptSpec> specs = data::parse_prompt_specs(v, key);
                     for (const data::PromptSpec& spec : specs)
                       if (training && spec.kind == data::PromptKind::everything)
                         throw Error(std::string(key) + ": '" + spec.name() +
                                     "' scores whole mask sets; it is for val_prompts");
                     return !specs.empty();
                   },
                   "must list prompt kinds"};
}

// A decoder collapses at the encoder's learning rate: lower, warmed up and clipped.
const nlohmann::json& decoder_defaults() {
  static const nlohmann::json changes = {{"epochs", 4},
                                         {"batch_size", 4},
                                         {"lr", 1e-4},
                                         {"min_lr", 1e-6},
                                         {"warmup_steps", 50},
                                         {"clip_grad", 1.0},
                                         {"checkpoint_every", 500},
                                         {"student_model", ""}};  // "": what --student holds
  return changes;
}

}  // namespace

train::TrainConfig decoder_loop_defaults() {
  return train::train_config_table().read(decoder_defaults(), "defaults");
}

const io::ConfigTable<FinetuneConfig>& finetune_config_table() {
  static const io::ConfigTable<FinetuneConfig> table =
      train::train_config_table()
          .without(
              {"init", "layer_decay", "loss", "loss_ignore_padding"})  // the distillation's own
          .as_part_of(&C::loop)
          .with_defaults(decoder_defaults())
          .with_help({
              {"data",
               "the store's images with their annotations: SA-1B folders or .tar files, COCO .json "
               "files; image folders for the prompts grid@N and random@K (space- or "
               "comma-separated)"},
              {"student_model",
               "student encoder architecture (\"\": --student's run's, else what --student holds)"},
              {"seed", "seed of the prompts, the held-out split and the data order"},
          })
          .plus({
              io::path(field("student", &C::student, "",
                             io::Check{[](const std::string& v, const C&) { return !v.empty(); },
                                       "give the student's weights (--student)"},
                             "student weights: encoder state dict, full SAM checkpoint or run "
                             "folder")),
              io::path(field("teacher_checkpoint", &C::teacher_checkpoint, "", any_value(),
                             "full SAM checkpoint of the teacher: its prompt encoder and mask "
                             "decoder make the targets and start the student's when it has none")),
              field("encoder_lr", &C::encoder_lr, 0.0, non_negative(),
                    "learning rate of the student encoder (0: frozen, bitwise unchanged)"),
              field("train_prompt_encoder", &C::train_prompt_encoder, false, any_value(),
                    "train the prompt encoder too (else frozen)"),
              field("prompts", &C::prompts, "box,point,center", prompt_kinds("prompts", true),
                    "prompt kinds sampled for training: box, point, center, fgbg@D; without masks "
                    "grid@N, "
                    "random@K"),
              field("prompts_per_image", &C::prompts_per_image, 8, positive(),
                    "annotations sampled per image and epoch, each with one prompt"),
              field(
                  "refine_iters", &C::refine_iters, 0, non_negative(),
                  "SAM's iterative refinement: points added in the error region, fed back with the "
                  "previous low-res mask (0: off)"),
              field("target", &C::target, Target::teacher, any_value(),
                    "teacher (its masks for the same prompts) or gt (the annotation masks)"),
              field("loss", &C::loss, MaskLoss::focal_dice_iou, any_value(),
                    "focal_dice_iou (20 x focal + dice + IoU-head MSE, as SAM) or bce_dice"),
              field(
                  "holdout", &C::holdout, 0.2,
                  io::Check{[](double v, const C&) { return v > 0 && v < 1; }, "must be in (0, 1)"},
                  "share of the images held out for the mIoU check after each epoch"),
              field("val_prompts", &C::val_prompts, "box,point,center",
                    prompt_kinds("val_prompts", false), "prompt kinds of the held-out mIoU check"),
              field("val_max_prompts", &C::val_max_prompts, 16, positive(),
                    "annotations per held-out image in the mIoU check"),
              field("patience", &C::patience, 2, non_negative(),
                    "epochs without a better held-out mIoU before stopping (0: never)"),
          });
  return table;
}

const nlohmann::json& finetune_config_defaults() { return finetune_config_table().defaults(); }

FinetuneConfig finetune_config_from_json(const nlohmann::json& given, const std::string& source) {
  FinetuneConfig c = finetune_config_table().read(given, source);
  c.loop.json = finetune_config_table().write(c);
  return c;
}

}  // namespace sd::finetune
