#include "finetune/finetuner.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include "data/dataset.h"
#include "eval/evaluator.h"
#include "eval/html.h"
#include "eval/run.h"
#include "finetune/mask_loss.h"
#include "finetune/training_prompts.h"
#include "io/checkpoint.h"
#include "io/run_folder.h"
#include "io/weights.h"
#include "models/autocast.h"
#include "models/predictor.h"
#include "models/sam.h"
#include "models/sam_weights.h"
#include "store/manifest.h"
#include "store/reader.h"
#include "train/objective.h"
#include "train/training_set.h"
#include "util/atomic_file.h"
#include "util/device.h"
#include "util/error.h"
#include "util/log.h"
#include "util/progress.h"
#include "util/random.h"
#include "util/text.h"

namespace sd::finetune {
namespace {

constexpr int64_t kLowResScale = 4;  // low-res logits: 1/4 of the input

void freeze(torch::nn::Module& module) {
  for (auto& p : module.parameters()) p.requires_grad_(false);
}

// The training images and the held-out ones: the round(holdout x N) (at least one) images
// of smallest seeded draw, so the split depends on the ids and the seed only.
std::pair<data::Dataset, data::Dataset> split(const data::Dataset& all, double holdout,
                                              uint64_t seed) {
  if (all.size() < 2) throw Error("fine-tuning needs at least 2 images (some are held out)");
  std::vector<std::pair<double, std::string>> draws;
  for (const data::Entry& e : all.entries())
    draws.emplace_back(rng::holdout_draw(seed, e.id), e.id);
  std::sort(draws.begin(), draws.end());
  const size_t n =
      std::clamp<size_t>(size_t(std::lround(holdout * double(all.size()))), 1, all.size() - 1);
  const double cut = draws[n - 1].first;
  auto held = [&](const data::Entry& e) { return rng::holdout_draw(seed, e.id) <= cut; };
  return {all.filter([&](const data::Entry& e) { return !held(e); }), all.filter(held)};
}

// The annotation mask in the decoder's low-res frame: resized as the image, padded to the
// square input, averaged over 4x4 pixels, thresholded. 1x1x256x256 float 0/1.
at::Tensor low_res_target(const at::Tensor& mask, models::Size2 input, int64_t img_size,
                          at::Device device) {
  at::Tensor m = mask.to(device, at::kFloat).unsqueeze(0).unsqueeze(0);
  m = at::upsample_bilinear2d(m, {input[0], input[1]}, /*align_corners=*/false);
  m = at::constant_pad_nd(m, {0, img_size - input[1], 0, img_size - input[0]});
  return (at::avg_pool2d(m, {kLowResScale, kLowResScale}) > 0.5).to(at::kFloat);
}

void add_click(models::Prompts& p, const Click& click, at::Device device) {
  at::Tensor xy =
      at::tensor({float(click.x), float(click.y)}, at::kFloat).to(device).view({1, 1, 2});
  at::Tensor label =
      at::full({1, 1}, click.label, at::TensorOptions().dtype(at::kInt).device(device));
  p.point_coords = p.point_coords.defined() ? at::cat({p.point_coords, xy}, 1) : xy;
  p.point_labels = p.point_labels.defined() ? at::cat({p.point_labels, label}, 1) : label;
}

class DecoderFinetuning : public train::Objective {
 public:
  explicit DecoderFinetuning(const FinetuneConfig& c)
      : c_(c),
        device_(resolve_device(c.loop.device)),
        reader_(std::make_shared<store::Reader>(c.loop.store)),
        kinds_(data::parse_prompt_specs(c.prompts, "prompts")) {
    settings_.prompts = data::parse_prompt_specs(c.val_prompts, "val_prompts");
    settings_.max_prompts_per_image = int(c.val_max_prompts);
    settings_.seed = uint64_t(c.loop.seed);
    models::check_amp(c.loop.amp, device_);
    if (!c.teacher_checkpoint
             .empty())  // its prompt encoder and mask decoder read the store's embeddings
      store::check_made_by(reader_->manifest(), "", c.teacher_checkpoint, c.loop.store);
    const train::TrainingSet all = train::training_set(*reader_, c.loop.data, /*annotations=*/true,
                                                       c.loop.images, c.loop.strict);
    check_kinds(all.dataset);
    cached_ = all.cached_images;
    std::tie(train_, holdout_) = split(all.dataset, c.holdout, uint64_t(c.loop.seed));
    const io::Weights student = io::read_weights(c.student);
    config_ = models::encoder_config_of(student, c.loop.student_model, "--student-model");
    load_models(student);
    student_->to(device_);
    teacher_->to(device_);
    const double encoder_scale = c.encoder_lr / c.loop.lr;
    groups_ = train::make_param_groups(*student_, [encoder_scale](const std::string& name) {
      return starts_with(name, "image_encoder.") ? encoder_scale : 1.0;
    });
  }

  torch::nn::Module& model() override { return *student_; }
  const std::vector<train::ParamGroup>& param_groups() const override { return groups_; }
  const data::Dataset& dataset() const override { return train_; }
  data::ImageSource image_source() const override {
    return train::image_source(train::TrainingSet{train_, cached_}, *reader_);
  }
  bool needs_records() const override { return true; }
  std::string description() const override {
    return "mask decoder of a " + models::preset_name(*config_) + " student (" +
           std::to_string(holdout_.size()) + " images held out, targets: " + word(c_.target) + ")";
  }

  void train_mode() override {
    student_->train();
    if (c_.encoder_lr == 0)
      student_->image_encoder->eval();  // frozen: batch norms keep their statistics
  }

  at::Tensor loss(const data::Batch& batch) override {
    const at::Tensor embeddings =
        student_embeddings(batch.images.to(device_, /*non_blocking=*/true));
    at::Tensor total = at::zeros({}, at::TensorOptions().device(device_));
    int64_t terms = 0;
    for (size_t b = 0; b < batch.ids.size(); ++b) {
      const uint64_t seed = rng::prompt_seed(uint64_t(c_.loop.seed), batch.epoch, batch.ids[b]);
      at::Generator clicks = at::make_generator<at::CPUGeneratorImpl>(rng::click_seed(seed));
      const at::Tensor teacher_embedding =
          reader_->embedding(batch.ids[b]).unsqueeze(0).to(device_);
      for (const TrainingPrompt& p :
           sample_prompts(batch.records[b], kinds_, c_.prompts_per_image, seed)) {
        Image image{embeddings.slice(0, b, b + 1), teacher_embedding, batch.original_sizes[b],
                    batch.input_sizes[b]};
        terms += train_prompt(image, p, clicks, total);
      }
    }
    if (terms == 0) {  // no usable annotation: nothing to learn
      // A learning encoder's synchronised BatchNorms all-reduce in backward on every rank.
      if (c_.loop.sync_batchnorm && embeddings.requires_grad()) return embeddings.sum() * 0.0;
      return total.requires_grad_(true);
    }
    return total / double(terms);
  }

  std::optional<train::Validation> validate(const train::ValidationPoint& at) override {
    eval::Evaluator evaluator(student_, settings_, teacher_);
    const eval::EvalReport report = eval::evaluate_images(
        evaluator, holdout_, eval::stored_embeddings(reader_), reader_.get(), {}, /*quiet=*/true);
    const std::map<std::string, double> miou = report.mean_by_kind(&eval::PromptOutcome::iou);
    if (miou.empty()) throw Error("no held-out image has an annotation that gives a prompt");
    if (at.writes) {  // each validation's report, as `eval --report` writes it
      const io::RunPaths paths{at.run_dir};
      std::filesystem::create_directories(paths.heldout());
      write_file_atomic(paths.heldout_report(at.step), eval::report_json(report).dump(2) + "\n");
    }
    last_report_ = report;
    double sum = 0;
    std::string line;
    for (const auto& [kind, value] : miou) {
      sum += value;
      line += " " + kind + " " + format_number(value);
    }
    log::info("held-out mIoU vs teacher:" + line);
    return train::Validation{sum / double(miou.size()), miou};
  }

 private:
  struct Image {
    at::Tensor student_embedding, teacher_embedding;  // 1x256x64x64
    models::Size2 original, input;
  };

  // The student's embeddings: without a graph when its encoder is frozen.
  at::Tensor student_embeddings(const at::Tensor& images) {
    at::AutoGradMode grad(c_.encoder_lr > 0);
    models::AutocastScope autocast(c_.loop.amp, device_);
    return student_->image_encoder->forward(images).to(at::kFloat);
  }

  // One prompt and its refinement rounds, each adding its loss to `total`; returns the rounds.
  int64_t train_prompt(const Image& image, const TrainingPrompt& p, at::Generator& clicks,
                       at::Tensor& total) {
    const models::ResizeLongestSide transform(student_->img_size());
    models::Prompts prompt = models::to_input_frame(p.prompt, transform, image.original, device_);
    models::Prompts teacher_prompt = prompt;
    const at::Tensor truth =
        c_.target == Target::gt ? low_res_target(p.mask, image.input, student_->img_size(), device_)
                                : at::Tensor();
    bool multimask = p.spec.single_point();
    int64_t round = 0;
    for (;; ++round) {
      models::DecoderOutput out;
      {
        models::AutocastScope autocast(c_.loop.amp, device_);
        out = student_->decode(image.student_embedding, prompt, multimask);
      }
      at::Tensor teacher_logits;
      const at::Tensor target =
          truth.defined() ? truth
                          : teacher_target(image, teacher_prompt, multimask, teacher_logits);
      const PromptLoss l = prompt_loss(out.masks.to(at::kFloat), out.iou_predictions.to(at::kFloat),
                                       target, c_.loss);
      total = total + l.loss;
      if (round == c_.refine_iters) break;
      const at::Tensor kept = out.masks.slice(1, l.kept, l.kept + 1).detach().to(at::kFloat);
      const std::optional<Click> click =
          error_click(kept[0][0] > 0, target[0][0] > 0.5, ceil_div(image.input[0]),
                      ceil_div(image.input[1]), double(kLowResScale), clicks);
      if (!click) break;
      add_click(prompt, *click, device_);
      add_click(teacher_prompt, *click, device_);
      prompt.mask_input = kept;
      teacher_prompt.mask_input = truth.defined() ? kept : teacher_logits;
      multimask = false;  // SAM: a refined prompt is no longer ambiguous
    }
    return round + 1;
  }

  // The teacher's mask for the prompt (1x1x256x256 0/1; by its own predicted IoU when it
  // gives three); its logits go to `logits` for the next refinement round.
  at::Tensor teacher_target(const Image& image, const models::Prompts& prompt, bool multimask,
                            at::Tensor& logits) {
    at::NoGradGuard no_grad;
    models::DecoderOutput out = teacher_->decode(image.teacher_embedding, prompt, multimask);
    const int64_t best = out.iou_predictions[0].argmax().item<int64_t>();
    logits = out.masks.slice(1, best, best + 1).to(at::kFloat);
    return (logits > 0).to(at::kFloat);
  }

  // The page of the best validation so far, that of the weights final.pth will hold (as
  // `eval --html` writes it, without pictures): heldout/index.html.
  void kept_best(const train::ValidationPoint& at) override {
    if (!at.writes) return;
    eval::write_report_html(last_report_, io::RunPaths{at.run_dir}.heldout(), "",
                            "samdistill finetune: held-out images, the weights in final.pth "
                            "(the best held-out mIoU: " +
                                at.when + ", step " + std::to_string(at.step) + ")");
  }

  // The prompt kinds fit the images: mask kinds need annotations, and so does target gt.
  void check_kinds(const data::Dataset& images) const {
    data::check_prompts_fit(kinds_, images, "prompts");
    data::check_prompts_fit(settings_.prompts, images, "val_prompts");
    if (c_.target != Target::gt) return;
    for (const data::PromptSpec& spec : kinds_)
      if (!spec.needs_mask())
        throw Error("prompts: '" + spec.name() +
                    "' has no annotation mask to train on with target gt; use target teacher");
  }

  static int64_t ceil_div(int64_t pixels) { return (pixels + kLowResScale - 1) / kLowResScale; }

  // The student (encoder + its prompt encoder and mask decoder) and the teacher's prompt
  // encoder and mask decoder (frozen), which share the student's encoder object.
  void load_models(const io::Weights& student) {
    const std::string& student_file = student.file;
    const io::StateDict& weights = student.entries;
    student_ = models::build_sam(*config_);
    io::load_state_dict(*student_->image_encoder, student.encoder(), "", student_file);
    const bool own = models::load_sam_heads(*student_, weights, student_file);
    teacher_ = models::build_sam(*config_, student_->image_encoder);
    const std::string source =
        c_.teacher_checkpoint.empty() ? student_file : io::resolve_weights(c_.teacher_checkpoint);
    const io::StateDict teacher_weights =
        c_.teacher_checkpoint.empty() ? weights : io::read_state_dict(source);
    if (!models::load_sam_heads(*teacher_, teacher_weights, source))
      throw Error("'" + source +
                  "' holds no prompt encoder and mask decoder: give --teacher-checkpoint, "
                  "the teacher's full SAM checkpoint");
    if (!own) models::load_sam_heads(*student_, teacher_weights, source);
    freeze(*teacher_->prompt_encoder);
    freeze(*teacher_->mask_decoder);
    teacher_->prompt_encoder->eval();
    teacher_->mask_decoder->eval();
    if (c_.encoder_lr == 0) freeze(*student_->image_encoder);
    if (!c_.train_prompt_encoder) freeze(*student_->prompt_encoder);
    log::info("student '" + student_file + "'; prompt encoder and mask decoder start from '" +
              (own ? student_file : source) + "'; targets from " +
              (c_.target == Target::gt ? std::string("the annotations")
                                       : "the teacher's ('" + source + "')"));
  }

  FinetuneConfig c_;
  at::Device device_;
  std::shared_ptr<store::Reader> reader_;
  std::optional<models::EncoderConfig> config_;  // the student's, read in the constructor
  std::vector<data::PromptSpec> kinds_;
  data::Dataset train_, holdout_;
  bool cached_ = false;
  models::Sam student_{nullptr}, teacher_{nullptr};
  std::vector<train::ParamGroup> groups_;
  eval::EvalSettings settings_;
  eval::EvalReport last_report_;  // of the latest validation
};

}  // namespace

train::TrainSummary finetune(const FinetuneRequest& request) {
  DecoderFinetuning objective(request.config);
  train::LoopRequest loop{request.config.loop, request.run, request.config.patience};
  loop.name = "finetune";
  loop.group = request.group;
  return train::run_training(loop, objective);
}

}  // namespace sd::finetune
