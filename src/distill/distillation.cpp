#include "distill/distillation.h"

#include <ATen/ATen.h>

#include "distill/loss.h"
#include "io/weights.h"
#include "models/autocast.h"
#include "models/image_encoder.h"
#include "models/sam_weights.h"
#include "store/manifest.h"
#include "store/reader.h"
#include "train/objective.h"
#include "train/param_groups.h"
#include "train/training_set.h"
#include "util/device.h"

namespace sd::distill {
namespace {

// The student's initial weights are a function of the seed.
std::shared_ptr<models::ImageEncoder> make_student(const models::EncoderConfig& config,
                                                   int64_t seed) {
  at::manual_seed(static_cast<uint64_t>(seed));
  return models::make_image_encoder(config);
}

// The loss (c_.loss) between the student's embedding of each image and the teacher's stored one.
class Distillation : public train::Objective {
 public:
  explicit Distillation(const TrainRequest& r)
      : c_(r.config),
        device_(resolve_device(c_.device)),
        reader_(c_.store),
        set_(train::training_set(reader_, c_.data, false, c_.images, c_.strict)),
        student_config_(models::resolve_encoder(c_.student_model)),
        encoder_(make_student(student_config_, c_.seed)) {
    store::check_made_by(reader_.manifest(), r.teacher, r.teacher_checkpoint, c_.store);
    models::check_amp(c_.amp, device_);
    if (!c_.init.empty()) load_init(io::read_weights(c_.init));
    encoder_->to(device_);
    groups_ = train::make_param_groups(*encoder_, student_config_, c_.layer_decay);
  }

  torch::nn::Module& model() override { return *encoder_; }
  const std::vector<train::ParamGroup>& param_groups() const override { return groups_; }
  const data::Dataset& dataset() const override { return set_.dataset; }
  data::ImageSource image_source() const override { return train::image_source(set_, reader_); }
  bool needs_records() const override { return false; }
  void train_mode() override { encoder_->train(); }
  std::string description() const override {
    return models::preset_name(student_config_) + " student encoder (images from the " +
           (set_.cached_images ? "store's image cache)" : "JPEGs)");
  }

  // The student's initial weights from an encoder, a full SAM checkpoint or a run.
  void load_init(const io::Weights& init) {
    models::check_fits(student_config_, "student_model '" + c_.student_model + "'", init);
    io::load_state_dict(*encoder_, init.encoder(), "", init.file);
  }

  at::Tensor loss(const data::Batch& batch) override {
    at::Tensor images = batch.images.to(device_, /*non_blocking=*/true);
    at::Tensor target = train::stack_targets(reader_, batch.ids, device_);
    at::Tensor out;
    {
      models::AutocastScope autocast(c_.amp, device_);
      out = encoder_->forward(images);
    }
    return c_.loss_ignore_padding ? masked_embedding_loss(out, target, batch.input_sizes, c_.loss)
                                  : embedding_loss(out, target, c_.loss);
  }

 private:
  train::TrainConfig c_;
  at::Device device_;
  store::Reader reader_;
  train::TrainingSet set_;
  models::EncoderConfig student_config_;
  std::shared_ptr<models::ImageEncoder> encoder_;
  std::vector<train::ParamGroup> groups_;
};

}  // namespace

train::TrainSummary run_distillation(const TrainRequest& request) {
  Distillation objective(request);
  train::LoopRequest loop{request.config, request.run};
  loop.group = request.group;
  return train::run_training(loop, objective);
}

}  // namespace sd::distill
