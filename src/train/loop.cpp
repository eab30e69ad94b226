#include "train/loop.h"

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "io/checkpoint.h"
#include "io/run_folder.h"
#include "io/state_dict.h"
#include "models/image_encoder.h"
#include "store/manifest.h"
#include "train/checkpoint.h"
#include "train/loss_plot.h"
#include "train/loss_scale.h"
#include "train/metrics_log.h"
#include "train/ranks.h"
#include "train/schedule.h"
#include "util/atomic_file.h"
#include "util/clock.h"
#include "util/device.h"
#include "util/error.h"
#include "util/log.h"
#include "util/memory.h"
#include "util/progress.h"
#include "util/stop_signal.h"

namespace fs = std::filesystem;

namespace sd::train {
namespace {

using Clock = std::chrono::steady_clock;

// recompute_stages on the image encoder inside `model`; sd::Error naming the key when it
// has no stages to recompute.
void recompute_stages(torch::nn::Module& model, const TrainConfig& c, bool data_parallel) {
  if (c.sync_batchnorm && data_parallel)
    throw Error(
        "recompute_stages and sync_batchnorm cannot be combined: the recomputation "
        "would run the BatchNorms' collectives again in backward");
  for (const std::shared_ptr<torch::nn::Module>& m : model.modules())
    if (auto* encoder = dynamic_cast<models::ImageEncoder*>(m.get()))
      if (encoder->recompute_stages(c.recompute_stages)) return;
  throw Error("recompute_stages " + std::to_string(c.recompute_stages) +
              " applies to students with stages to recompute (TinyViT); this one has none (set "
              "it to 0)");
}

class Loop {
 public:
  Loop(const LoopRequest& request, Objective& objective)
      : r_(request),
        c_(request.config),
        o_(objective),
        paths_{request.run.dir},
        device_(resolve_device(c_.device)),
        store_id_(store::manifest_digest(c_.store)),
        ranks_(request.group) {
    for (const auto& g : o_.param_groups())
      params_.insert(params_.end(), g.params.begin(), g.params.end());
    if (c_.batch_size % ranks_.size() != 0)
      throw Error("batch_size " + std::to_string(c_.batch_size) + " (the global batch) is not " +
                  "divisible by the " + std::to_string(ranks_.size()) + " processes of this run");
    if (request.group) sync_ = std::make_unique<distributed::GradientSync>(*request.group, params_);
    if (request.group && c_.sync_batchnorm) sync_batchnorms(o_.model(), *request.group);
    if (c_.recompute_stages > 0) recompute_stages(o_.model(), c_, request.group != nullptr);
    GroupOptions options;
    options.lr = c_.lr;
    options.weight_decay = c_.weight_decay;
    optimizer_ = std::make_unique<torch::optim::AdamW>(adamw_groups(o_.param_groups(), options));

    const int64_t per_step = c_.batch_size * c_.grad_accum;
    const int64_t images = static_cast<int64_t>(o_.dataset().size());
    steps_per_epoch_ = images / per_step;
    if (steps_per_epoch_ == 0)
      throw Error("batch_size x grad_accum = " + std::to_string(per_step) + " exceeds the " +
                  std::to_string(images) + " training images");
    total_steps_ = c_.epochs * steps_per_epoch_;
    if (c_.max_steps > 0 && (c_.epochs == 0 || c_.max_steps < total_steps_))
      total_steps_ = c_.max_steps;
    schedule_ = LrSchedule{c_.lr, c_.min_lr, c_.warmup_steps, total_steps_};
  }

  TrainSummary go() {
    ranks_.check_same(c_.json, store_id_);
    prepare_folder();
    if (ranks_.group()) distributed::broadcast_module(*ranks_.group(), o_.model());
    if (progress_.step >= total_steps_) return already_complete();
    if (ranks_.writes()) trim_metrics();
    log::info("training the " + o_.description() + " on " + std::to_string(o_.dataset().size()) +
              " images, " + std::to_string(total_steps_) + " steps on " + device_.str());
    if (progress_.step == 0) validate_start();
    stop_if_signalled();
    data::Loader loader(o_.dataset(), o_.image_source(), loader_options());
    Progress bar(r_.name, total_steps_, progress_.step);
    const auto start = Clock::now();
    while (progress_.step < total_steps_ && !summary_.stopped_early) {
      loader.start(progress_.epoch, progress_.position);
      while (progress_.step < total_steps_ && !epoch_complete() && step(loader, bar)) {
        if (c_.checkpoint_every > 0 && progress_.step % c_.checkpoint_every == 0) checkpoint();
        stop_if_signalled();
      }
      if (progress_.step >= total_steps_ && !epoch_complete()) {  // max_steps within an epoch
        score_last_weights();
        break;
      }
      end_epoch();
      stop_if_signalled();
    }
    const double wall = seconds_since(start);
    if (saved_step_ != progress_.step)
      checkpoint();  // the last step's, unless an epoch end or checkpoint_every wrote it
    summary_.skipped_records = static_cast<int64_t>(loader.skipped_records());
    summary_.images_per_s = wall > 0 ? images_ / wall : 0;
    summary_.data_wait_pct = wall > 0 ? 100.0 * wait_s_ / wall : 0;
    return finish();
  }

 private:
  data::LoaderOptions loader_options() const {
    data::LoaderOptions o;
    o.workers = static_cast<int>(c_.workers);  // 0: one per core
    o.seed = static_cast<uint64_t>(c_.seed);
    o.drop_last = true;
    o.read_records = o_.needs_records();
    o.pin_memory = device_.is_cuda();
    o.strict = c_.strict;
    o.batch_size = static_cast<int>(c_.batch_size / ranks_.size());  // the global batch's share
    o.shard = ranks_.rank();
    o.shards = ranks_.size();
    return o;
  }

  // Rank 0 picks the checkpoint (and clears or prepares the folder); every rank resumes from it.
  void prepare_folder() {
    const std::string from = ranks_.from_rank0([this] {
      std::string point = resume_point();
      if (point.empty()) clear_previous_run();
      fs::create_directories(paths_.checkpoints());
      write_file_atomic(paths_.config(), c_.json.dump(2) + "\n");
      return point;
    });
    if (!from.empty()) resume_from(from);
  }

  // The checkpoint to continue from; "" for a new run.
  std::string resume_point() const {
    const RunStart& run = r_.run;
    if (run.resume == "auto") {
      if (auto newest = newest_valid_checkpoint(paths_)) return *newest;
      log::info("no valid checkpoint in '" + paths_.dir + "': starting afresh");
      return "";
    }
    if (!run.resume.empty()) return run.resume;
    const std::vector<std::string> previous = io::run_files(paths_);
    if (!previous.empty() && !run.overwrite)
      throw Error("run folder '" + paths_.dir + "' holds a previous run (" + previous.front() +
                  (previous.size() > 1 ? " and " + std::to_string(previous.size() - 1) + " more"
                                       : std::string()) +
                  "): continue it with --resume auto, replace it with --overwrite, or give "
                  "another --out");
    return "";
  }

  // A fresh start leaves nothing of an earlier run that its files could be mixed with.
  void clear_previous_run() {
    const std::vector<std::string> previous = io::run_files(paths_);
    if (previous.empty()) return;
    log::info("starting afresh in '" + paths_.dir + "': removing the " +
              std::to_string(previous.size()) + " files of the previous run there");
    for (const std::string& file : previous) fs::remove(file);
  }

  // A resume may change how long the run goes and its learning rates: said, not done silently.
  void warn_of_new_schedule(const nlohmann::json& began_with) const {
    std::string changes;
    for (const char* key : {"epochs", "max_steps", "lr", "min_lr", "warmup_steps"})
      if (began_with.contains(key) && began_with[key] != c_.json.at(key))
        changes += std::string(changes.empty() ? "" : ", ") + key + " " + began_with[key].dump() +
                   " -> " + c_.json.at(key).dump();
    if (!changes.empty())
      log::warn("resuming with another schedule than the run began with (" + changes +
                "): " + std::to_string(total_steps_) +
                " steps in all, the learning rate follows the new schedule");
  }

  void resume_from(const std::string& path) {
    TrainCheckpoint meta = load_train_checkpoint(path, o_.model(), *optimizer_);
    if (meta.store_id != store_id_)
      throw Error("checkpoint '" + path + "' was trained on another store than '" + c_.store + "'");
    warn_of_new_schedule(meta.config);
    progress_ = meta.progress;
    progress_.position = resume_position(meta, ranks_.rank(), ranks_.size());
    log::info("resuming from '" + path + "' at step " + std::to_string(progress_.step) +
              " (epoch " + std::to_string(progress_.epoch) + ", image " +
              std::to_string(progress_.position) + ")");
  }

  // A resumed run whose steps are all done: its final weights (written again if a kill came
  // between the last checkpoint and them), and a summary that says so.
  TrainSummary already_complete() {
    log::info("run '" + paths_.dir + "' is already complete: " + std::to_string(progress_.step) +
              " of " + std::to_string(total_steps_) + " steps done; nothing to train");
    summary_.already_complete = true;
    return finish();
  }

  // The end of every run: final.pth, the loss curve, and the summary of the whole run.
  TrainSummary finish() {
    summary_.steps = progress_.step;
    summary_.nonfinite_total = progress_.nonfinite_total;
    summary_.best_score = progress_.best_score;
    summary_.final_weights = paths_.final_weights();
    if (!ranks_.writes()) return summary_;
    if (progress_.validated)
      summary_.best_step = io::peek_train_checkpoint(paths_.best()).progress.step;
    write_final_weights();
    write_loss_plot(paths_.metrics(), paths_.loss_curve());
    return summary_;
  }

  // On SIGINT or SIGTERM between steps: the progress is saved (a checkpoint of this step) and
  // the run stops, saying how to continue.
  void stop_if_signalled() {
    const int signal = ranks_.any_signal(stop_signal());
    if (signal == 0) return;
    const std::string path =
        saved_step_ == progress_.step ? checkpoint_path(progress_.step) : checkpoint();
    if (ranks_.writes()) write_loss_plot(paths_.metrics(), paths_.loss_curve());
    throw Stopped(signal, signal_name(signal) + ": stopped after step " +
                              std::to_string(progress_.step) + " of " +
                              std::to_string(total_steps_) + "; checkpoint '" + path +
                              "' holds it. Continue with the same command and --resume auto");
  }

  // Drops the metrics (lines and event-file scalars) written after the checkpoint resumed
  // from: the steps and the epoch-end score that will be redone, so that each appears once.
  void trim_metrics() {
    metrics_.trim([this](const nlohmann::json& j) {
      const int64_t step = j.value("step", int64_t{0}), epoch = j.value("epoch", int64_t{0});
      return step < progress_.step ||
             (step == progress_.step && (j.contains("loss") || epoch < progress_.epoch));
    });
  }

  ValidationPoint point(const std::string& when) const {
    return ValidationPoint{paths_.dir, progress_.step, when, ranks_.writes()};
  }

  // The score of the weights before any step: the first best checkpoint.
  void validate_start() {
    std::optional<Validation> score = o_.validate(point("before training"));
    if (!score) return;
    progress_.validated = true;
    log::info("held-out score before training: " + format_number(score->score));
    record_score(*score);
    progress_.best_score = score->score;
    keep_best(checkpoint(), point("before training"));
  }

  // The checkpoint at `path`, validated at `at`, is the best: best.pth, and the objective's say.
  void keep_best(const std::string& path, const ValidationPoint& at) {
    if (ranks_.writes()) write_file_atomic(paths_.best(), read_file(path));
    o_.kept_best(at);
  }

  // A run that ends inside an epoch (max_steps) scores its last weights too, so that final.pth
  // is the best of all the weights it trained, not only of those at epoch ends.
  void score_last_weights() {
    if (!progress_.validated || summary_.steps_this_call == 0) return;
    const std::string when = "after step " + std::to_string(progress_.step);
    const double score = held_out_score(when);
    const bool best = score > progress_.best_score;
    if (best) progress_.best_score = score;
    const std::string path = checkpoint();
    if (best) keep_best(path, point(when));
  }

  // Validates the weights of now (`when`: "after epoch 2"), logs and records the score.
  double held_out_score(const std::string& when) {
    const Validation v = o_.validate(point(when)).value();
    log::info("held-out score " + when + ": " + format_number(v.score) + " (best " +
              format_number(progress_.best_score) + ")");
    record_score(v);
    return v.score;
  }

  // One optimiser step over grad_accum micro-batches; false when the epoch has run out.
  bool step(data::Loader& loader, Progress& bar) {
    const auto t0 = Clock::now();
    const double lr = schedule_.at(progress_.step);
    for (size_t i = 0; i < o_.param_groups().size(); ++i)
      static_cast<torch::optim::AdamWOptions&>(optimizer_->param_groups()[i].options())
          .lr(lr * o_.param_groups()[i].lr_scale);
    o_.train_mode();
    optimizer_->zero_grad();
    double loss_sum = 0, wait = 0;
    int64_t seen = 0, end_position = progress_.position;
    for (int64_t micro = 0; micro < c_.grad_accum; ++micro) {
      const auto w0 = Clock::now();
      std::optional<data::Batch> batch = loader.next();
      wait += seconds_since(w0);
      // A partial accumulation is dropped with the epoch's tail (any rank's).
      if (!ranks_.all(batch.has_value())) return false;
      if (sync_ && micro == c_.grad_accum - 1) sync_->arm();
      at::Tensor loss = o_.loss(*batch);
      (loss * (loss_scale().factor() / static_cast<double>(c_.grad_accum))).backward();
      loss_sum += loss.item<double>();
      seen += static_cast<int64_t>(batch->ids.size()) * ranks_.size();
      end_position = batch->end_position;
    }
    if (sync_) sync_->finish();  // every rank now holds the mean gradient
    const double loss = ranks_.mean(loss_sum / static_cast<double>(c_.grad_accum));
    const bool finite_loss = std::isfinite(loss);
    LossScale scaler = loss_scale();
    const double grad_norm =
        scaler.step(*optimizer_, params_, loss,
                    c_.clip_grad > 0 ? c_.clip_grad : std::numeric_limits<double>::infinity());
    progress_.loss_scale = scaler.scale;
    progress_.loss_scale_good_steps = scaler.good_steps;
    if (std::isfinite(grad_norm)) {
      progress_.nonfinite_in_row = 0;
    } else if (scaler.enabled && finite_loss) {
      log::warn("step " + std::to_string(progress_.step) +
                ": fp16 gradient overflow, step skipped, "
                "loss scale lowered to " +
                format_number(scaler.scale));
    } else {
      skip_nonfinite(loss);
    }
    progress_.step += 1;
    progress_.position = end_position;
    record(loss, lr, grad_norm, seen, wait, seconds_since(t0), bar);
    return true;
  }

  // Every epoch has the same number of steps (drop_last, partial accumulations dropped).
  bool epoch_complete() const { return progress_.step >= (progress_.epoch + 1) * steps_per_epoch_; }

  LossScale loss_scale() const {
    return LossScale{c_.amp == models::Amp::fp16, progress_.loss_scale,
                     progress_.loss_scale_good_steps};
  }

  void skip_nonfinite(double loss) {
    progress_.nonfinite_in_row += 1;
    progress_.nonfinite_total += 1;
    log::warn("step " + std::to_string(progress_.step) + ": non-finite loss or gradient (" +
              std::to_string(loss) + "), step skipped");
    if (progress_.nonfinite_in_row >= c_.max_nonfinite)
      throw Error(std::to_string(progress_.nonfinite_in_row) +
                  " non-finite losses in a row (max_nonfinite): stopping; the last checkpoint "
                  "in '" +
                  paths_.checkpoints() + "' is intact");
  }

  void record(double loss, double lr, double grad_norm, int64_t seen, double wait, double secs,
              Progress& bar) {
    images_ += static_cast<double>(seen);
    wait_s_ += wait;
    if (summary_.steps_this_call == 0) summary_.first_loss = loss;
    summary_.last_loss = loss;
    summary_.steps_this_call += 1;
    if (std::isfinite(loss)) {  // a skipped step does not score the epoch
      progress_.epoch_loss += loss;
      progress_.epoch_steps += 1;
    }
    nlohmann::json line = {{"step", progress_.step}, {"epoch", progress_.epoch},
                           {"loss", loss},           {"lr", lr},
                           {"grad_norm", grad_norm}, {"images_per_s", seen / secs},
                           {"data_wait_s", wait},    {"step_s", secs},
                           {"rss_mb", peak_rss_mb()}};
    if (o_.param_groups().size() > 1) line["lr_groups"] = group_lrs(lr);
    if (sync_) {  // rank 0's gradient all-reduce, and the part of it backward hid
      line["allreduce_s"] = sync_->last_timing().allreduce_s;
      line["allreduce_hidden_s"] = sync_->last_timing().hidden_s;
    }
    if (!ranks_.writes()) return;
    metrics_.append(line);
    if (progress_.step % c_.log_every == 0 || progress_.step == total_steps_)
      bar.update(progress_.step, "loss " + format_number(loss) + " lr " + format_number(lr) + " " +
                                     format_number(seen / secs) + " img/s");
  }

  // The learning rate of each parameter group (layer-wise decay scales them).
  std::vector<double> group_lrs(double lr) const {
    std::vector<double> out;
    for (const ParamGroup& g : o_.param_groups()) out.push_back(lr * g.lr_scale);
    return out;
  }

  void record_score(const Validation& v) {
    summary_.scores.push_back(v.score);
    nlohmann::json line = {
        {"step", progress_.step}, {"epoch", progress_.epoch}, {"val_score", v.score}};
    if (!v.by_kind.empty()) line["val_by_kind"] = v.by_kind;
    if (ranks_.writes()) metrics_.append(line);
  }

  // Scores the epoch (held-out score, else -mean loss), keeps the best, stops early when the
  // held-out score has not improved for `patience` epochs.
  void end_epoch() {
    const double mean =
        progress_.epoch_steps > 0 ? progress_.epoch_loss / double(progress_.epoch_steps) : 0;
    log::info("epoch " + std::to_string(progress_.epoch) + " done, mean loss " +
              format_number(mean));
    const std::string when = "after epoch " + std::to_string(progress_.epoch);
    const double score = progress_.validated ? held_out_score(when) : -mean;
    const bool best = progress_.epoch_steps > 0 && score > progress_.best_score;
    if (best) progress_.best_score = score;
    progress_.bad_epochs = best ? 0 : progress_.bad_epochs + 1;
    progress_.epoch += 1;
    progress_.position = 0;
    progress_.epoch_loss = 0;
    progress_.epoch_steps = 0;
    const std::string path = checkpoint();
    if (best && progress_.validated) keep_best(path, point(when));
    if (best && !progress_.validated && ranks_.writes())
      write_file_atomic(paths_.best(), read_file(path));
    if (progress_.validated && r_.patience > 0 && progress_.bad_epochs >= r_.patience) {
      log::warn("held-out score has not improved for " + std::to_string(progress_.bad_epochs) +
                " epoch(s) (patience): stopping early; final.pth is the best checkpoint");
      summary_.stopped_early = true;
    }
  }

  std::string checkpoint_path(int64_t step) const {
    return paths_.checkpoints() + "/" + io::checkpoint_name(step);
  }

  // Every rank calls it (rank 0 gathers the others' positions and writes the file).
  std::string checkpoint() {
    std::string path = checkpoint_path(progress_.step);
    saved_step_ = progress_.step;
    const std::vector<int64_t> positions = ranks_.positions(progress_.step, progress_.position);
    if (!ranks_.writes()) return path;
    save_train_checkpoint(path, o_.model(), *optimizer_,
                          TrainCheckpoint{progress_, c_.json, store_id_, positions});
    auto all = list_checkpoints(paths_);
    for (size_t i = static_cast<size_t>(c_.keep_last); i < all.size(); ++i) fs::remove(all[i]);
    return path;
  }

  // The best held-out weights when the objective validates, else the last ones.
  void write_final_weights() {
    io::write_state_dict(paths_.final_weights(), progress_.validated
                                                     ? io::read_state_dict(paths_.best())
                                                     : io::state_dict(o_.model()));
  }

  LoopRequest r_;
  TrainConfig c_;
  Objective& o_;
  io::RunPaths paths_;
  MetricsLog metrics_{paths_};
  at::Device device_;
  std::string store_id_;
  Ranks ranks_;
  std::unique_ptr<distributed::GradientSync> sync_;  // data-parallel runs: gradients averaged
  std::vector<at::Tensor> params_;                   // every trained parameter, in group order
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  int64_t steps_per_epoch_ = 0, total_steps_ = 0;
  int64_t saved_step_ = -1;  // step of the newest checkpoint this call wrote
  LrSchedule schedule_;
  TrainProgress progress_;
  TrainSummary summary_;
  double images_ = 0, wait_s_ = 0;
};

}  // namespace

TrainSummary run_training(const LoopRequest& request, Objective& objective) {
  return Loop(request, objective).go();
}

}  // namespace sd::train
