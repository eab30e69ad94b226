// The trainer end to end through the program: a store made by the fixture teacher over
// data/sample, a small TinyViT student, exact resume after SIGKILL, export.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/fixtures.h"
#include "distill/export.h"
#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "models/config.h"
#include "models/sam.h"

namespace fs = std::filesystem;

namespace sd::testing {
namespace {

// A small TinyViT (the last width must keep the 64x64 grid: 320, 448 or 576).
const char* kStudent =
    R"({"embed_dims": [16, 32, 64, 320], "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 5],
        "window_sizes": [7, 7, 14, 7]})";

class TrainRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fixtures_present()) return;
    dir_ = new std::string(make_temp_dir("samdistill-train"));
    auto teacher = first_folder(false);
    ASSERT_TRUE(teacher) << "no ViT folder under " << fixtures_root();
    std::ofstream(*dir_ + "/teacher.json") << teacher->config.dump();
    std::ofstream(*dir_ + "/student.json") << kStudent;
    ProgramRun embed = run_program("--threads 2 embed --teacher " + *dir_ + "/teacher.json" +
                                   " --teacher-checkpoint " + teacher->file("weights.pth") +
                                   " --data " + data_sample() + " --store " + store() +
                                   " --cache-images");
    ASSERT_EQ(embed.status, 0) << embed.output;
  }
  static void TearDownTestSuite() {
    if (dir_) fs::remove_all(*dir_);
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override { SD_REQUIRE_FIXTURES(); }

  static std::string store() { return *dir_ + "/store"; }
  static std::string train_args(const std::string& run, int steps) {
    return "--threads 2 train --store " + store() + " --out " + run + " --student-model " +
           *dir_ + "/student.json --batch-size 2 --max-steps " + std::to_string(steps) +
           " --warmup-steps 2 --lr 0.002 --checkpoint-every 1 --keep-last 2 --log-every 1 --seed 7";
  }
  static std::vector<double> losses(const std::string& run) {
    std::vector<double> out;
    std::ifstream in(run + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      auto loss = nlohmann::json::parse(line)["loss"];  // null when it was not finite
      out.push_back(loss.is_number() ? loss.get<double>() : NAN);
    }
    return out;
  }
  static void expect_same_weights(const std::string& a, const std::string& b) {
    io::StateDict x = io::read_state_dict(a), y = io::read_state_dict(b);
    ASSERT_EQ(x.size(), y.size());
    for (size_t i = 0; i < x.size(); ++i) {
      EXPECT_EQ(x[i].first, y[i].first);
      EXPECT_TRUE(at::equal(x[i].second, y[i].second)) << x[i].first << " differs";
    }
  }
  // The uninterrupted run every resume test compares against (made once).
  static const std::string& reference_run() {
    static std::string run;
    if (run.empty()) {
      run = *dir_ + "/reference";
      ProgramRun r = run_program(train_args(run, 7));
      EXPECT_EQ(r.status, 0) << r.output;
    }
    return run;
  }

  static std::string* dir_;
};
std::string* TrainRun::dir_ = nullptr;

TEST_F(TrainRun, LossFallsAndTheRunFolderIsComplete) {
  const std::string& run = reference_run();
  for (const char* leaf : {"config.json", "metrics.jsonl", "final.pth", "loss.png"})
    EXPECT_TRUE(fs::exists(run + "/" + leaf)) << leaf;
  std::vector<double> loss = losses(run);
  ASSERT_EQ(loss.size(), 7u);
  double first = (loss[0] + loss[1]) / 2, last = (loss[5] + loss[6]) / 2;
  EXPECT_LT(last, 0.9 * first) << "loss did not fall: " << first << " -> " << last;
  // keep_last 2: only the two newest step checkpoints remain (plus best.pth)
  EXPECT_TRUE(fs::exists(run + "/checkpoints/step-00000007.pth"));
  EXPECT_TRUE(fs::exists(run + "/checkpoints/step-00000006.pth"));
  EXPECT_FALSE(fs::exists(run + "/checkpoints/step-00000005.pth"));
}

TEST_F(TrainRun, ResumeAfterSigkillIsBitwiseExact) {
  const std::string& reference = reference_run();
  const std::string run = *dir_ + "/killed";
  const std::string command = binary_path() + " " + train_args(run, 7) + " >" + *dir_ + "/killed.log 2>&1";
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + command).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Kill it once it is past step 3, wherever it is.
  for (int i = 0; i < 600 && losses(run).size() < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the run ended before it could be killed";
  ASSERT_FALSE(fs::exists(run + "/final.pth"));

  ProgramRun resumed = run_program(train_args(run, 7) + " --resume auto");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_PRED2(contains, resumed.output, "resuming from");
  expect_same_weights(reference + "/final.pth", run + "/final.pth");
}

TEST_F(TrainRun, ResumePassesOverADamagedNewestCheckpoint) {
  const std::string& reference = reference_run();
  const std::string run = *dir_ + "/damaged";
  fs::copy(reference, run, fs::copy_options::recursive);
  fs::remove(run + "/final.pth");
  fs::resize_file(run + "/checkpoints/step-00000007.pth", 1000);  // a torn write
  ProgramRun resumed = run_program(train_args(run, 7) + " --resume auto");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_PRED2(contains, resumed.output, "passing over damaged checkpoint");
  EXPECT_PRED2(contains, resumed.output, "step-00000006.pth");
  expect_same_weights(reference + "/final.pth", run + "/final.pth");
}

TEST_F(TrainRun, ANewRunRefusesAFolderWithCheckpoints) {
  ProgramRun again = run_program(train_args(reference_run(), 7));
  EXPECT_NE(again.status, 0);
  EXPECT_PRED2(contains, again.output, "already has checkpoints");
}

TEST_F(TrainRun, NonFiniteLossesAreSkippedThenStopTheRun) {
  io::StateDict weights = io::read_state_dict(reference_run() + "/final.pth");
  for (auto& [key, value] : weights)
    if (key == "neck.0.weight") value = value.clone().fill_(NAN);
  std::string init = *dir_ + "/nan.pth";
  io::write_state_dict(init, weights);
  const std::string run = *dir_ + "/nan";
  ProgramRun r = run_program(train_args(run, 5) + " --init " + init + " --max-nonfinite 2");
  EXPECT_NE(r.status, 0);
  EXPECT_PRED2(contains, r.output, "step skipped");
  EXPECT_PRED2(contains, r.output, "2 non-finite losses in a row");
  EXPECT_EQ(losses(run).size(), 1u);  // the second bad step stops the run before its record
}

TEST_F(TrainRun, AStoreOfAnotherTeacherIsRefused) {
  ProgramRun r = run_program(train_args(*dir_ + "/other", 1) + " --teacher vit_b");
  EXPECT_NE(r.status, 0);
  EXPECT_PRED2(contains, r.output, "teacher.");
  r = run_program(train_args(*dir_ + "/other", 1) + " --teacher-checkpoint " + *dir_ + "/student.json");
  EXPECT_NE(r.status, 0);
  EXPECT_PRED2(contains, r.output, "checkpoint");
}

TEST_F(TrainRun, ConfigErrorsNameTheKey) {
  std::string bad = *dir_ + "/bad.json";
  std::ofstream(bad) << R"({"epochs": "many"})";
  ProgramRun r = run_program("train --config " + bad + " --store " + store() + " --out " + *dir_ + "/x");
  EXPECT_NE(r.status, 0);
  EXPECT_PRED2(contains, r.output, "key 'epochs' must be number");
  r = run_program("train --store " + store() + " --out " + *dir_ + "/x --lr fast");
  EXPECT_NE(r.status, 0);
  EXPECT_PRED2(contains, r.output, "--lr: 'fast' is not a number");
}

TEST_F(TrainRun, ExportLoadsStrictlyAndGivesTheStudentsOutputs) {
  const std::string& run = reference_run();
  auto teacher = first_folder(false);
  std::string out = *dir_ + "/exported.pt";
  ProgramRun r = run_program("export --student " + run + " --decoder-from " +
                             teacher->file("weights.pth") + " --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;

  auto config = models::resolve_encoder(*dir_ + "/student.json");
  models::Sam sam = models::build_sam(config);
  io::load_state_dict(*sam, io::read_state_dict(out), "", out);
  auto student = models::make_image_encoder(config);
  io::load_state_dict(*student, io::read_state_dict(run + "/final.pth"), "", "final.pth");
  sam->eval();
  student->eval();
  at::manual_seed(0);
  at::Tensor x = at::randn({1, 3, 1024, 1024});
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(sam->image_encoder->forward(x), student->forward(x)));
  // The decoder is the teacher's.
  io::StateDict exported = io::read_state_dict(out);
  auto teacher_weights = load_tensors(teacher->file("weights.pth"));
  for (const auto& [key, value] : exported)
    if (key.rfind("mask_decoder.", 0) == 0) EXPECT_TRUE(at::equal(value, teacher_weights.at(key))) << key;
}

}  // namespace
}  // namespace sd::testing
