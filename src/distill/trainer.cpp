#include "distill/trainer.h"

#include <ATen/ATen.h>
#include <torch/types.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "data/loader.h"
#include "distill/autocast.h"
#include "distill/distill_loss.h"
#include "distill/loss_scale.h"
#include "distill/loss_plot.h"
#include "distill/param_groups.h"
#include "distill/run_folder.h"
#include "distill/schedule.h"
#include "distill/train_checkpoint.h"
#include "distill/training_set.h"
#include "io/checkpoint.h"
#include "models/image_encoder.h"
#include "store/manifest.h"
#include "store/reader.h"
#include "util/atomic_file.h"
#include "util/device.h"
#include "util/error.h"
#include "util/log.h"
#include "util/memory.h"
#include "util/progress.h"
#include "util/sha256.h"

namespace fs = std::filesystem;

namespace sd::distill {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Identity of a store: the digest of its manifest (what produced it).
std::string store_identity(const std::string& store) {
  return sha256_file(store::manifest_path(store));
}

// The student's initial weights are a function of the seed.
std::shared_ptr<models::ImageEncoder> make_student(const models::EncoderConfig& config, int64_t seed) {
  at::manual_seed(static_cast<uint64_t>(seed));
  return models::make_image_encoder(config);
}

class Run {
 public:
  explicit Run(const TrainRequest& request)
      : r_(request), c_(request.config), paths_{request.run_dir}, device_(parse_device(c_.device)),
        reader_(c_.store), set_(training_set(reader_, c_.data)),
        student_config_(models::resolve_encoder(c_.student_model)),
        encoder_(make_student(student_config_, c_.seed)) {
    store::check_made_by(reader_.manifest(), r_.teacher, r_.teacher_checkpoint, c_.store);
    check_amp(c_.amp, device_);
    if (!c_.init.empty()) io::load_state_dict(*encoder_, read_encoder_weights(c_.init), "", c_.init);
    encoder_->to(device_);
    groups_ = make_param_groups(*encoder_, student_config_, c_.layer_decay);
    for (const auto& g : groups_) params_.insert(params_.end(), g.params.begin(), g.params.end());
    GroupOptions options;
    options.lr = c_.lr;
    options.weight_decay = c_.weight_decay;
    optimizer_ = std::make_unique<torch::optim::AdamW>(adamw_groups(groups_, options));

    const int64_t per_step = c_.batch_size * c_.grad_accum;
    steps_per_epoch_ = static_cast<int64_t>(set_.dataset.size()) / per_step;
    if (steps_per_epoch_ == 0)
      throw Error("batch_size x grad_accum = " + std::to_string(per_step) + " exceeds the " +
                  std::to_string(set_.dataset.size()) + " training images");
    total_steps_ = c_.epochs * steps_per_epoch_;
    if (c_.max_steps > 0 && (c_.epochs == 0 || c_.max_steps < total_steps_)) total_steps_ = c_.max_steps;
    schedule_ = LrSchedule{c_.lr, c_.min_lr, c_.warmup_steps, total_steps_};
  }

  TrainSummary go() {
    prepare_folder();
    log::info("training " + models::preset_name(student_config_) + " on " +
              std::to_string(set_.dataset.size()) + " images (" +
              (set_.cached_images ? "store image cache" : "JPEGs") + "), " +
              std::to_string(total_steps_) + " steps on " + device_.str());
    data::Loader loader(set_.dataset, image_source(set_, reader_), loader_options());
    Progress bar("train", total_steps_, progress_.step);
    const auto start = Clock::now();
    while (progress_.step < total_steps_) {
      loader.start(progress_.epoch, progress_.position);
      while (progress_.step < total_steps_ && step(loader, bar)) {
        if (c_.checkpoint_every > 0 && progress_.step % c_.checkpoint_every == 0) checkpoint();
      }
      if (progress_.step >= total_steps_) break;
      end_epoch();
    }
    checkpoint();
    summary_.steps = progress_.step;
    summary_.nonfinite_total = progress_.nonfinite_total;
    double wall = seconds_since(start);
    summary_.images_per_s = wall > 0 ? images_ / wall : 0;
    summary_.data_wait_pct = wall > 0 ? 100.0 * wait_s_ / wall : 0;
    io::write_state_dict(paths_.final_weights(), io::state_dict(*encoder_));
    summary_.final_weights = paths_.final_weights();
    write_loss_plot(paths_.metrics(), paths_.loss_curve());
    return summary_;
  }

 private:
  data::LoaderOptions loader_options() const {
    data::LoaderOptions o;
    o.batch_size = static_cast<int>(c_.batch_size);
    o.workers = c_.workers > 0 ? static_cast<int>(c_.workers) : 2;
    o.seed = static_cast<uint64_t>(c_.seed);
    o.drop_last = true;
    o.read_records = false;
    o.pin_memory = device_.is_cuda();
    return o;
  }

  void prepare_folder() {
    fs::create_directories(paths_.checkpoints());
    std::string from;
    if (r_.resume == "auto") {
      if (auto newest = newest_valid_checkpoint(paths_)) from = *newest;
      else log::info("no valid checkpoint in '" + paths_.dir + "': starting afresh");
    } else if (!r_.resume.empty()) {
      from = r_.resume;
    } else if (!list_checkpoints(paths_).empty()) {
      throw Error("run folder '" + paths_.dir + "' already has checkpoints: use --resume auto "
                  "to continue it, or another --out");
    }
    if (!from.empty()) resume_from(from);
    write_file_atomic(paths_.config(), c_.json.dump(2) + "\n");
  }

  void resume_from(const std::string& path) {
    TrainCheckpoint meta = load_train_checkpoint(path, *encoder_, *optimizer_);
    if (meta.store_id != store_identity(c_.store))
      throw Error("checkpoint '" + path + "' was trained on another store than '" + c_.store + "'");
    progress_ = meta.progress;
    log::info("resuming from '" + path + "' at step " + std::to_string(progress_.step) +
              " (epoch " + std::to_string(progress_.epoch) + ", image " +
              std::to_string(progress_.position) + ")");
  }

  // One optimiser step over grad_accum micro-batches; false when the epoch has run out.
  bool step(data::Loader& loader, Progress& bar) {
    const auto t0 = Clock::now();
    const double lr = schedule_.at(progress_.step);
    for (size_t i = 0; i < groups_.size(); ++i)
      static_cast<torch::optim::AdamWOptions&>(optimizer_->param_groups()[i].options())
          .lr(lr * groups_[i].lr_scale);
    optimizer_->zero_grad();
    double loss_sum = 0, wait = 0;
    int64_t seen = 0, end_position = progress_.position;
    for (int64_t micro = 0; micro < c_.grad_accum; ++micro) {
      const auto w0 = Clock::now();
      std::optional<data::Batch> batch = loader.next();
      wait += seconds_since(w0);
      if (!batch) return false;  // a partial accumulation is dropped with the epoch's tail
      at::Tensor loss = micro_step(*batch);
      loss_sum += loss.item<double>();
      seen += static_cast<int64_t>(batch->ids.size());
      end_position = batch->end_position;
    }
    const double loss = loss_sum / static_cast<double>(c_.grad_accum);
    const bool finite_loss = std::isfinite(loss);
    LossScale scaler = loss_scale();
    scaler.unscale(params_);
    const double grad_norm = finite_loss ? clip_and_measure() : NAN;
    const bool ok = finite_loss && std::isfinite(grad_norm);
    scaler.update(ok);
    progress_.loss_scale = scaler.scale;
    progress_.loss_scale_good_steps = scaler.good_steps;
    if (ok) {
      optimizer_->step();
      progress_.nonfinite_in_row = 0;
    } else if (scaler.enabled && finite_loss) {
      log::warn("step " + std::to_string(progress_.step) + ": fp16 gradient overflow, step skipped, "
                "loss scale lowered to " + format_number(scaler.scale));
    } else {
      skip_nonfinite(loss);
    }
    progress_.step += 1;
    progress_.position = end_position;
    record(loss, lr, grad_norm, seen, wait, seconds_since(t0), bar);
    return true;
  }

  at::Tensor micro_step(const data::Batch& batch) {
    at::Tensor images = batch.images.to(device_, /*non_blocking=*/true);
    at::Tensor target = stack_targets(reader_, batch.ids, device_);
    at::Tensor out;
    {
      AutocastScope autocast(c_.amp, device_);
      out = encoder_->forward(images);
    }
    at::Tensor loss = c_.loss_ignore_padding ? masked_embedding_mse(out, target, batch.input_sizes)
                                             : embedding_mse(out, target);
    (loss * (loss_scale().factor() / static_cast<double>(c_.grad_accum))).backward();
    return loss.detach();
  }

  LossScale loss_scale() const {
    return LossScale{c_.amp == "fp16", progress_.loss_scale, progress_.loss_scale_good_steps};
  }

  double clip_and_measure() {
    double max_norm = c_.clip_grad > 0 ? c_.clip_grad : std::numeric_limits<double>::infinity();
    return torch::nn::utils::clip_grad_norm_(params_, max_norm);
  }

  void skip_nonfinite(double loss) {
    progress_.nonfinite_in_row += 1;
    progress_.nonfinite_total += 1;
    log::warn("step " + std::to_string(progress_.step) + ": non-finite loss or gradient (" +
              std::to_string(loss) + "), step skipped");
    if (progress_.nonfinite_in_row >= c_.max_nonfinite)
      throw Error(std::to_string(progress_.nonfinite_in_row) +
                  " non-finite losses in a row (max_nonfinite): stopping; the last checkpoint "
                  "in '" + paths_.checkpoints() + "' is intact");
  }

  void record(double loss, double lr, double grad_norm, int64_t seen, double wait, double secs,
              Progress& bar) {
    images_ += static_cast<double>(seen);
    wait_s_ += wait;
    if (summary_.steps_this_call == 0) summary_.first_loss = loss;
    summary_.last_loss = loss;
    summary_.steps_this_call += 1;
    epoch_loss_ += loss;
    epoch_steps_ += 1;
    nlohmann::json m = {{"step", progress_.step},      {"epoch", progress_.epoch},
                        {"loss", loss},                {"lr", lr},
                        {"grad_norm", grad_norm},      {"images_per_s", seen / secs},
                        {"data_wait_s", wait},         {"step_s", secs},
                        {"rss_mb", peak_rss_mb()}};
    std::ofstream(paths_.metrics(), std::ios::app) << m.dump() << "\n";
    if (progress_.step % c_.log_every == 0 || progress_.step == total_steps_)
      bar.update(progress_.step, "loss " + format_number(loss) + " lr " + format_number(lr) +
                                     " " + format_number(seen / secs) + " img/s");
  }

  void end_epoch() {
    double mean = epoch_steps_ > 0 ? epoch_loss_ / epoch_steps_ : 0;
    log::info("epoch " + std::to_string(progress_.epoch) + " done, mean loss " + format_number(mean));
    bool best = epoch_steps_ > 0 && (progress_.best_loss == 0 || mean < progress_.best_loss);
    if (best) progress_.best_loss = mean;
    progress_.epoch += 1;
    progress_.position = 0;
    epoch_loss_ = 0;
    epoch_steps_ = 0;
    std::string path = checkpoint();
    if (best) write_file_atomic(paths_.checkpoints() + "/best.pth", read_file(path));
  }

  std::string checkpoint() {
    std::string path = paths_.checkpoints() + "/" + checkpoint_name(progress_.step);
    save_train_checkpoint(path, *encoder_, *optimizer_,
                          TrainCheckpoint{progress_, c_.json, store_identity(c_.store)});
    auto all = list_checkpoints(paths_);
    for (size_t i = static_cast<size_t>(c_.keep_last); i < all.size(); ++i) fs::remove(all[i]);
    return path;
  }

  TrainRequest r_;
  TrainConfig c_;
  RunPaths paths_;
  at::Device device_;
  store::Reader reader_;
  TrainingSet set_;
  models::EncoderConfig student_config_;
  std::shared_ptr<models::ImageEncoder> encoder_;
  std::vector<ParamGroup> groups_;
  std::vector<at::Tensor> params_;  // every trained parameter, in group order
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  int64_t steps_per_epoch_ = 0, total_steps_ = 0;
  LrSchedule schedule_;
  TrainProgress progress_;
  TrainSummary summary_;
  double images_ = 0, wait_s_ = 0, epoch_loss_ = 0;
  int64_t epoch_steps_ = 0;
};

}  // namespace

TrainSummary train(const TrainRequest& request) { return Run(request).go(); }

}  // namespace sd::distill
