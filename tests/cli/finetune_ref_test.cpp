// Mask-decoder fine-tuning through the program: a store made by the fixture teacher over
// data/sample, a small TinyViT student, the teacher's decoder as the start and the target.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>

#include "common/pipeline.h"
#include "io/checkpoint.h"
#include "io/run_folder.h"
#include "io/state_dict.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;

namespace sd::testing {
namespace {

class FinetuneRun : public PipelineSuite {
 protected:
  static void SetUpTestSuite() {
    if (!fixtures_present()) return;
    make_folder("samdistill-finetune", 5);
    ProgramRun embed = embed_sample();
    ASSERT_EQ(embed.status, 0) << embed.output;
  }

  static std::string student_weights() { return dir() + "/student.pth"; }
  // 4 training images (one of 5 held out), batch 2: two steps an epoch.
  static std::string finetune_args(const std::string& run) {
    return "--threads 2 finetune --student " + student_weights() + " --student-model " + dir() +
           "/student.json --teacher-checkpoint " + teacher().file("weights.pth") + " --store " +
           dir() + "/store --data " + data_sample() + " --out " + run +
           " --epochs 2 --batch-size 2 --prompts-per-image 3 --refine-iters 1 --val-max-prompts 3"
           " --lr 0.0005 --warmup-steps 1 --checkpoint-every 1 --keep-last 10 --log-every 1 --seed "
           "3"
           " --patience 0";
  }
  // The uninterrupted run the tests look at (made once per process).
  static const std::string& reference_run() {
    static std::string run;
    if (run.empty()) {
      run = dir() + "/reference";
      ProgramRun r = run_program(finetune_args(run));
      EXPECT_EQ(r.status, 0) << r.output;
      output_ = r.output;
    }
    return run;
  }

  static std::string output_;
};
std::string FinetuneRun::output_;

std::string entry_prefix(const std::string& key) { return key.substr(0, key.find('.')); }

// The val_by_kind of each validation line of RUN/metrics.jsonl, by step.
std::map<int64_t, nlohmann::json> held_out_by_step(const std::string& run) {
  std::map<int64_t, nlohmann::json> out;
  std::ifstream in(run + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    if (j.contains("val_by_kind")) out[j["step"].get<int64_t>()] = j["val_by_kind"];
  }
  return out;
}

size_t occurrences(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

TEST_F(FinetuneRun, HeldOutMiouIsReportedBeforeAndAfterAndFinalIsTheBest) {
  const std::string& run = reference_run();
  const std::vector<double> scores = validation_scores(run);
  ASSERT_EQ(scores.size(), 3u) << "before training and after each of 2 epochs";
  for (double s : scores) EXPECT_TRUE(s >= 0 && s <= 1) << s;
  EXPECT_PRED2(contains, output_, "mIoU vs teacher before");
  EXPECT_EQ(step_losses(run).size(), 4u);
  // final.pth holds the weights of the best score, no worse than before the fine-tune.
  const double best = *std::max_element(scores.begin(), scores.end());
  EXPECT_GE(best, scores[0]);
  expect_same_weights(run + "/final.pth", run + "/checkpoints/best.pth");
  // A full SAM checkpoint: the student's encoder, a prompt encoder and a mask decoder.
  std::set<std::string> parts;
  for (const auto& [key, value] : io::read_state_dict(run + "/final.pth"))
    parts.insert(entry_prefix(key));
  EXPECT_EQ(parts, (std::set<std::string>{"image_encoder", "prompt_encoder", "mask_decoder"}));
}

// Each validation's held-out report is in the run folder as eval --report writes it
// (heldout/step-N.json, the mIoU of the metrics); the page (heldout/index.html, as eval --html's)
// is that of the weights final.pth holds, the best validation's, and it and the summary say
// which step they are.
TEST_F(FinetuneRun, TheRunFolderHoldsTheHeldOutReports) {
  const io::RunPaths paths{reference_run()};
  const std::map<int64_t, nlohmann::json> by_step = held_out_by_step(paths.dir);
  ASSERT_EQ(by_step.size(), 3u);
  EXPECT_EQ(by_step.begin()->first, 0);
  EXPECT_EQ(by_step.rbegin()->first, 4);
  for (const auto& [step, miou] : by_step) {
    const std::string file = paths.heldout_report(step);
    ASSERT_TRUE(fs::exists(file)) << file;
    const nlohmann::json report = nlohmann::json::parse(std::ifstream(file));
    EXPECT_EQ(report["miou"], miou) << file;
    EXPECT_GT(report["prompts"].get<int64_t>(), 0) << file;
  }
  const std::vector<double> scores = validation_scores(paths.dir);
  const size_t best = size_t(std::max_element(scores.begin(), scores.end()) - scores.begin());
  const int64_t best_step = int64_t(best) * 2;  // validations at steps 0, 2 and 4
  const std::string when =
      best == 0 ? "before training" : "after epoch " + std::to_string(best - 1);
  EXPECT_PRED2(contains, output_,
               "held-out     report " + paths.heldout_page() + " (final.pth's weights, step " +
                   std::to_string(best_step) + ";");
  EXPECT_PRED2(contains, output_,
               "the weights of step " + std::to_string(best_step) + " (the best)");
  ASSERT_TRUE(fs::exists(paths.heldout_page()));
  const std::string page = read_file(paths.heldout_page());
  EXPECT_PRED2(contains, page,
               "held-out images, the weights in final.pth (the best held-out mIoU: " + when +
                   ", step " + std::to_string(best_step) + ")");
  EXPECT_PRED2(contains, page, "<table id=summary>");
  const nlohmann::json shown =
      nlohmann::json::parse(std::ifstream(paths.heldout_report(best_step)));
  EXPECT_EQ(occurrences(page, "<tr id=\""), shown["prompts"].get<size_t>())
      << "a row per prompt of the best validation";
  EXPECT_FALSE(fs::exists(paths.heldout() + "/pictures")) << "a page without pictures";
}

TEST_F(FinetuneRun, TheFrozenEncoderIsBitwiseUnchangedAndTheDecoderLearns) {
  const std::string last = reference_run() + "/checkpoints/step-00000004.pth";
  const auto teacher_weights = load_tensors(teacher().file("weights.pth"));
  const io::StateDict student = io::read_state_dict(student_weights());
  size_t encoder_entries = 0, decoder_changed = 0, prompt_encoder_changed = 0;
  for (const auto& [key, value] : io::read_state_dict(last)) {
    const std::string part = entry_prefix(key);
    if (part == "image_encoder") {
      const std::string name = key.substr(part.size() + 1);
      auto it = std::find_if(student.begin(), student.end(),
                             [&](const auto& e) { return e.first == name; });
      ASSERT_NE(it, student.end()) << key;
      EXPECT_TRUE(at::equal(value, it->second)) << key << " changed";
      ++encoder_entries;
    } else if (!at::equal(value, teacher_weights.at(key))) {
      ++(part == "mask_decoder" ? decoder_changed : prompt_encoder_changed);
    }
  }
  EXPECT_EQ(encoder_entries, student.size());
  EXPECT_GT(decoder_changed, 0u);
  EXPECT_EQ(prompt_encoder_changed, 0u) << "the prompt encoder is frozen by default";
}

TEST_F(FinetuneRun, ResumeAfterSigkillIsBitwiseExact) {
  const std::string& reference = reference_run();
  const std::string run = dir() + "/killed";
  ASSERT_TRUE(kill_after_steps(finetune_args(run), run, 2))
      << "the run ended before it could be killed";
  ASSERT_FALSE(fs::exists(run + "/final.pth"));
  ProgramRun resumed = run_program(finetune_args(run) + " --resume auto");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_PRED2(contains, resumed.output, "resuming from");
  expect_same_weights(reference + "/checkpoints/step-00000004.pth",
                      run + "/checkpoints/step-00000004.pth");
  expect_same_weights(reference + "/final.pth", run + "/final.pth");
  EXPECT_EQ(validation_scores(reference), validation_scores(run));
  EXPECT_EQ(step_losses(reference), step_losses(run));
}

TEST_F(FinetuneRun, SigtermStopsAfterTheStepAndTheResumeIsExact) {
  const std::string& reference = reference_run();
  const std::string run = dir() + "/terminated";
  const SignalledRun stopped = signal_after_steps(finetune_args(run), run, 1, {SIGTERM});
  ASSERT_TRUE(stopped.sent) << "the run ended before the signal";
  EXPECT_EQ(stopped.status, 128 + SIGTERM) << stopped.output;
  EXPECT_PRED2(contains, stopped.output, "SIGTERM: stopped after step");
  EXPECT_FALSE(fs::exists(run + "/final.pth"));
  ProgramRun resumed = run_program(finetune_args(run) + " --resume auto");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  expect_same_weights(reference + "/final.pth", run + "/final.pth");
  EXPECT_EQ(validation_scores(reference), validation_scores(run));
  EXPECT_EQ(step_losses(reference), step_losses(run));
}

// A run that ends inside an epoch scores its last weights, and final.pth is the best of all.
TEST_F(FinetuneRun, StoppingInsideAnEpochScoresTheLastWeights) {
  const std::string run = dir() + "/mid-epoch";
  ProgramRun r = run_program(finetune_args(run) + " --max-steps 3");
  ASSERT_EQ(r.status, 0) << r.output;
  const std::vector<double> scores = validation_scores(run);
  ASSERT_EQ(scores.size(), 3u) << "before training, after epoch 1, after step 3";
  EXPECT_PRED2(contains, r.output, "held-out score after step 3");
  const size_t best = size_t(std::max_element(scores.begin(), scores.end()) - scores.begin());
  expect_same_weights(run + "/final.pth", run + "/checkpoints/best.pth");
  if (best == 2)  // the last weights won: final.pth is them
    expect_same_weights(run + "/checkpoints/best.pth", run + "/checkpoints/step-00000003.pth");
}

TEST_F(FinetuneRun, ExportKeepsTheFineTunedDecoder) {
  const std::string& run = reference_run();
  const std::string out = dir() + "/finetuned.pt";
  ProgramRun r = run_program("export --student " + run + " --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  expect_same_weights(run + "/final.pth", out);
}

TEST_F(FinetuneRun, BadSettingsAreNamed) {
  ProgramRun r = run_program(finetune_args(dir() + "/bad") + " --target teacher_masks");
  EXPECT_NE(r.status, 0);
  EXPECT_PRED2(contains, r.output, "config key 'target'");
  r = run_program("finetune --store " + dir() + "/store --data " + data_sample() + " --out " +
                  dir() + "/bad");
  EXPECT_NE(r.status, 0);
  EXPECT_PRED2(contains, r.output, "--student");
  r = run_program(finetune_args(dir() + "/bad") + " --prompts box,corner");
  EXPECT_NE(r.status, 0);
  EXPECT_PRED2(contains, r.output, "corner");
}

}  // namespace
}  // namespace sd::testing
