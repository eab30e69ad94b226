// The training loop with a scripted objective: one parameter and held-out scores given in
// advance, to check which weights the best checkpoint and final.pth hold, and early stopping.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "common/events.h"
#include "common/fixtures.h"
#include "common/one_weight.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "io/run_folder.h"
#include "store/manifest.h"
#include "train/checkpoint.h"
#include "train/loop.h"
#include "train/objective.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace sd::train {
namespace {

class Scripted : public Objective {
 public:
  // `scores`: what validate() answers, in turn (empty: the objective does not validate).
  Scripted(std::vector<double> scores, int images) : scores_(std::move(scores)) {
    std::vector<data::Entry> entries;
    for (int i = 0; i < images; ++i)
      entries.push_back({"img_" + std::to_string(i), "g", "", "", nullptr});
    dataset_ = data::Dataset::from_entries(entries);
    ParamGroup g;
    g.names = {"w"};
    g.params = {model_.w};
    ParamGroup other;  // a second learning rate, outside the model and the loss
    other.lr_scale = 0.5;
    other.names = {"other"};
    other.params = {other_.w};
    groups_ = {g, other};
  }

  torch::nn::Module& model() override { return model_; }
  const std::vector<ParamGroup>& param_groups() const override { return groups_; }
  const data::Dataset& dataset() const override { return dataset_; }
  data::ImageSource image_source() const override {
    return [](const data::Entry&, const data::Record*) { return at::zeros({8, 8, 3}, at::kByte); };
  }
  bool needs_records() const override { return false; }
  void train_mode() override {}
  at::Tensor loss(const data::Batch&) override { return (model_.w - 1).pow(2).sum(); }
  std::optional<Validation> validate(const ValidationPoint& at) override {
    if (scores_.empty()) return std::nullopt;
    points.push_back(at.when + " @" + std::to_string(at.step));
    if (write_reports) {  // as finetune does
      const io::RunPaths paths{at.run_dir};
      fs::create_directories(paths.heldout());
      std::ofstream(paths.heldout_report(at.step)) << "{}";
      std::ofstream(paths.heldout_page()) << at.when;
    }
    const double score = scores_.at(validations_++);  // throws when asked more than scripted
    return Validation{score, {{"box", score}, {"point", score / 2}}};
  }
  std::string description() const override { return "scripted objective"; }

  bool write_reports = false;       // a held-out report in the run folder at each validation
  std::vector<std::string> points;  // "<when> @<step>" of each validation

 private:
  size_t validations_ = 0;
  std::vector<double> scores_;
  testing::OneWeight model_{1}, other_{1};
  std::vector<ParamGroup> groups_;
  data::Dataset dataset_;
};

class TrainLoop : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::make_temp_dir("samdistill-loop");
    fs::create_directories(dir_ + "/store");
    std::ofstream(store::manifest_path(dir_ + "/store")) << "{}";  // the store's identity
  }
  void TearDown() override { fs::remove_all(dir_); }

  // 4 images, batch 2: two steps an epoch; a checkpoint at every step.
  LoopRequest request(int64_t epochs, int64_t patience) const {
    const nlohmann::json overrides = {
        {"store", dir_ + "/store"}, {"epochs", epochs}, {"batch_size", 2},       {"lr", 0.1},
        {"warmup_steps", 0},        {"device", "cpu"},  {"checkpoint_every", 1}, {"keep_last", 100},
        {"log_every", 1},           {"workers", 1}};
    LoopRequest r;
    r.config = train_config_from_json(io::merge_config(train_config_defaults(), overrides, "test"));
    r.run.dir = dir_ + "/run";
    r.patience = patience;
    return r;
  }

  float weight_in(const std::string& file) const {
    const io::StateDict d = io::read_state_dict(file);
    EXPECT_EQ(d.size(), 1u);
    return d.at(0).second.item<float>();
  }
  std::string step_file(int64_t step) const {
    return dir_ + "/run/checkpoints/" + io::checkpoint_name(step);
  }

  std::string dir_;
};

TEST_F(TrainLoop, PatienceStopsAndFinalHoldsTheBestHeldOutWeights) {
  Scripted objective({0.5, 0.7, 0.6, 0.65, 0.9}, 4);
  const TrainSummary s = run_training(request(4, 2), objective);
  // Before training 0.5, epoch 0 0.7 (best), epochs 1 and 2 no better: patience 2 stops.
  EXPECT_EQ(s.scores, (std::vector<double>{0.5, 0.7, 0.6, 0.65}));
  EXPECT_TRUE(s.stopped_early);
  EXPECT_EQ(s.steps, 6);
  EXPECT_DOUBLE_EQ(s.best_score, 0.7);
  EXPECT_NE(weight_in(step_file(2)), weight_in(step_file(6)));
  EXPECT_EQ(weight_in(s.final_weights), weight_in(step_file(2)));
  EXPECT_EQ(weight_in(dir_ + "/run/checkpoints/best.pth"), weight_in(step_file(2)));
}

TEST_F(TrainLoop, EveryEpochIsScoredTheLastToo) {
  Scripted objective({0.5, 0.4, 0.3, 0.2, 0.9}, 4);
  const TrainSummary s = run_training(request(4, 0), objective);
  EXPECT_EQ(s.scores.size(), 5u) << "before training and after each of 4 epochs";
  EXPECT_FALSE(s.stopped_early);
  EXPECT_EQ(s.steps, 8);
  EXPECT_EQ(weight_in(s.final_weights), weight_in(step_file(8))) << "the last epoch scored best";
}

TEST_F(TrainLoop, FinalIsTheStartWhenNoEpochBeatsIt) {
  Scripted objective({0.9, 0.1, 0.2}, 4);
  const TrainSummary s = run_training(request(2, 0), objective);
  EXPECT_EQ(s.scores.size(), 3u);
  EXPECT_EQ(weight_in(s.final_weights), 0.0f) << "the weights before training";
}

TEST_F(TrainLoop, WithoutValidationFinalIsTheLastWeights) {
  Scripted objective({}, 4);
  const TrainSummary s = run_training(request(2, 1), objective);
  EXPECT_TRUE(s.scores.empty());
  EXPECT_FALSE(s.stopped_early) << "patience applies to held-out scores only";
  EXPECT_EQ(weight_in(s.final_weights), weight_in(step_file(4)));
  EXPECT_TRUE(fs::exists(dir_ + "/run/checkpoints/best.pth"));
}

TEST_F(TrainLoop, StepFilesPastStepNineHoldTheirSteps) {
  Scripted objective({}, 4);
  const TrainSummary s = run_training(request(6, 0), objective);
  EXPECT_EQ(s.steps, 12);
  EXPECT_TRUE(fs::exists(dir_ + "/run/checkpoints/step-00000010.pth"));
  EXPECT_NE(weight_in(step_file(9)), weight_in(step_file(10)));
  EXPECT_EQ(weight_in(s.final_weights), weight_in(step_file(12)));
}

using Scalars = std::map<std::pair<std::string, int64_t>, double>;  // (tag, step) -> value

void add_scalars(const std::string& tag, int64_t step, const nlohmann::json& v, Scalars& out) {
  if (v.is_object()) {
    for (const auto& [key, inner] : v.items()) add_scalars(tag + "/" + key, step, inner, out);
  } else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i)
      add_scalars(tag + "/" + std::to_string(i), step, v[i], out);
  } else {
    EXPECT_TRUE(out.emplace(std::pair{tag, step}, v.is_null() ? NAN : v.get<double>()).second)
        << tag << " at step " << step << " twice in metrics.jsonl";
  }
}

// What metrics.jsonl says: every number of every line but step and epoch.
Scalars metrics_scalars(const std::string& run) {
  Scalars out;
  std::ifstream in(run + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    for (const auto& [key, value] : j.items())
      if (key != "step" && key != "epoch") add_scalars(key, j.at("step"), value, out);
  }
  return out;
}

// What TensorBoard shows: the scalars of every event file of the run folder.
Scalars event_scalars(const std::vector<std::string>& files) {
  Scalars out;
  for (const std::string& file : files)
    for (const testing::DecodedEvent& e : testing::decode_events(file)) {
      if (!e.has_scalar) continue;
      EXPECT_TRUE(out.emplace(std::pair{e.tag, e.step}, e.scalar).second)
          << e.tag << " at step " << e.step << " written twice (" << file << ")";
    }
  return out;
}

void expect_same_scalars(const Scalars& events, const Scalars& metrics) {
  ASSERT_EQ(events.size(), metrics.size());
  for (const auto& [key, value] : metrics) {
    ASSERT_TRUE(events.count(key)) << key.first << " at step " << key.second;
    const double got = events.at(key);
    if (std::isnan(value))
      EXPECT_TRUE(std::isnan(got)) << key.first;
    else
      EXPECT_FLOAT_EQ(float(got), float(value)) << key.first << " at step " << key.second;
  }
}

std::vector<std::string> event_files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0)
      out.push_back(entry.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(TrainLoop, EventFilesHoldEveryScalarOfMetricsJsonlAtItsStep) {
  if (!testing::can_decode_events()) GTEST_SKIP() << "built without protobuf and protoc";
  Scripted objective({0.5, 0.7, 0.6}, 4);
  run_training(request(2, 0), objective);
  const Scalars metrics = metrics_scalars(dir_ + "/run");
  for (const char* tag : {"loss", "lr", "lr_groups/0", "lr_groups/1", "grad_norm", "images_per_s",
                          "data_wait_s", "rss_mb", "val_score", "val_by_kind/box"})
    EXPECT_TRUE(metrics.count({tag, 4})) << tag;
  EXPECT_DOUBLE_EQ(metrics.at({"lr_groups/1", 1}), 0.5 * metrics.at({"lr", 1}));
  EXPECT_EQ(event_files_in(dir_ + "/run").size(), 1u);
  expect_same_scalars(event_scalars(event_files_in(dir_ + "/run")), metrics);
}

// A kill after step 7 whose last checkpoint is step 5: the resumed run writes steps 6-8 again
// into a new event file, and the first file no longer holds them.
TEST_F(TrainLoop, AResumeWritesANewEventFileWithOnlyTheStepsAfterItsCheckpoint) {
  if (!testing::can_decode_events()) GTEST_SKIP() << "built without protobuf and protoc";
  {
    Scripted objective({}, 4);
    LoopRequest r = request(4, 0);
    r.config.max_steps = 7;
    run_training(r, objective);
  }
  for (int64_t step : {6, 7}) fs::remove(step_file(step));
  Scripted objective({}, 4);
  LoopRequest r = request(4, 0);
  r.run.resume = "auto";
  EXPECT_EQ(run_training(r, objective).steps_this_call, 3);
  const std::vector<std::string> files = event_files_in(dir_ + "/run");
  ASSERT_EQ(files.size(), 2u);
  int64_t first_new = 100;
  for (const testing::DecodedEvent& e : testing::decode_events(files[1]))
    if (e.has_scalar) first_new = std::min(first_new, e.step);
  EXPECT_EQ(first_new, 6);
  expect_same_scalars(event_scalars(files), metrics_scalars(dir_ + "/run"));
}

TEST_F(TrainLoop, AFreshStartRemovesThePreviousRunsEventFiles) {
  Scripted first({}, 4);
  run_training(request(1, 0), first);
  Scripted second({}, 4);
  LoopRequest r = request(1, 0);
  r.run.overwrite = true;
  run_training(r, second);
  EXPECT_EQ(event_files_in(dir_ + "/run").size(), 1u);
}

// The objective is told when it validates and where the run folder is, and the held-out
// reports it writes there are the run's: a new run refuses the folder, --overwrite removes them.
TEST_F(TrainLoop, HeldOutReportsBelongToTheRun) {
  Scripted first({0.5, 0.6, 0.7}, 4);
  first.write_reports = true;
  LoopRequest r = request(2, 0);
  r.config.max_steps = 3;
  run_training(r, first);
  EXPECT_EQ(first.points, (std::vector<std::string>{"before training @0", "after epoch 0 @2",
                                                    "after step 3 @3"}));
  const io::RunPaths paths{dir_ + "/run"};
  const std::vector<std::string> files = io::run_files(paths);
  for (const std::string& file : {paths.heldout_page(), paths.heldout_report(0),
                                  paths.heldout_report(2), paths.heldout_report(3)}) {
    EXPECT_TRUE(fs::exists(file)) << file;
    EXPECT_NE(std::find(files.begin(), files.end(), file), files.end()) << file;
  }
  fs::remove_all(paths.dir + "/checkpoints");
  fs::remove(paths.config());
  fs::remove(paths.metrics());
  fs::remove(paths.final_weights());
  fs::remove(paths.loss_curve());
  for (const std::string& file : event_files_in(paths.dir)) fs::remove(file);
  Scripted second({}, 4);
  EXPECT_THROW(run_training(request(1, 0), second), Error) << "the reports alone are a run";
  r = request(1, 0);
  r.run.overwrite = true;
  run_training(r, second);
  EXPECT_FALSE(fs::exists(paths.heldout_page()));
  for (int64_t step : {0, 2, 3}) EXPECT_FALSE(fs::exists(paths.heldout_report(step))) << step;
}

}  // namespace
}  // namespace sd::train
