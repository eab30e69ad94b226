// The training loop with a scripted objective: one parameter and held-out scores given in
// advance, to check which weights the best checkpoint and final.pth hold, and early stopping.
#include "train/train_loop.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/module.h>

#include <filesystem>
#include <fstream>

#include "common/fixtures.h"
#include "common/one_weight.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "io/run_folder.h"
#include "store/manifest.h"
#include "train/objective.h"
#include "train/train_checkpoint.h"

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
    groups_ = {g};
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
  std::optional<double> validate() override {
    if (scores_.empty()) return std::nullopt;
    return scores_.at(validations_++);  // throws when the loop asks more often than scripted
  }
  std::string description() const override { return "scripted objective"; }

 private:
  size_t validations_ = 0;
  std::vector<double> scores_;
  testing::OneWeight model_{1};
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

}  // namespace
}  // namespace sd::train
