// The trainer end to end through the program: a store made by the fixture teacher over
// data/sample, a small TinyViT student, exact resume after SIGKILL, export.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "common/pipeline.h"
#include "data/loader.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "io/run_folder.h"
#include "io/state_dict.h"
#include "models/config.h"
#include "models/sam.h"
#include "store/part.h"
#include "store/reader.h"
#include "util/atomic_file.h"
#include "util/sha256.h"

namespace fs = std::filesystem;

namespace sd::testing {
namespace {

class TrainRun : public PipelineSuite {
 protected:
  static void SetUpTestSuite() {
    if (!fixtures_present()) return;
    make_folder("samdistill-train", 0);
    ProgramRun embed = embed_sample();
    ASSERT_EQ(embed.status, 0) << embed.output;
  }

  static std::string store() { return dir() + "/store"; }
  static std::string train_args(const std::string& run, int steps) {
    return "--threads 2 train --store " + store() + " --out " + run + " --student-model " + dir() +
           "/student.json --batch-size 2 --max-steps " + std::to_string(steps) +
           " --warmup-steps 2 --lr 0.002 --checkpoint-every 1 --keep-last 2 --log-every 1 --seed 7";
  }
  // The uninterrupted run every resume test compares against (made once).
  static const std::string& reference_run() {
    static std::string run;
    if (run.empty()) {
      run = dir() + "/reference";
      ProgramRun r = run_program(train_args(run, 7));
      EXPECT_EQ(r.status, 0) << r.output;
    }
    return run;
  }
};

TEST_F(TrainRun, LossFallsAndTheRunFolderIsComplete) {
  const std::string& run = reference_run();
  for (const char* leaf : {"config.json", "metrics.jsonl", "final.pth", "loss.png"})
    EXPECT_TRUE(fs::exists(run + "/" + leaf)) << leaf;
  std::vector<double> loss = step_losses(run);
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
  const std::string run = dir() + "/killed";
  ASSERT_TRUE(kill_after_steps(train_args(run, 7), run, 3))
      << "the run ended before it could be killed";
  ASSERT_FALSE(fs::exists(run + "/final.pth"));

  ProgramRun resumed = run_program(train_args(run, 7) + " --resume auto");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_PRED2(contains, resumed.output, "resuming from");
  expect_same_weights(reference + "/final.pth", run + "/final.pth");
  EXPECT_EQ(step_losses(run), step_losses(reference)) << "metrics.jsonl holds every step once";
}

// SIGINT (Ctrl-C) and SIGTERM (Slurm, Kubernetes): the step finishes, its checkpoint is
// written, the program says how to continue and exits 128 + signal; the resume ends where an
// uninterrupted run does.
TEST_F(TrainRun, SigintAndSigtermStopAfterTheStepWithACheckpoint) {
  const std::string& reference = reference_run();
  for (int signal : {SIGINT, SIGTERM}) {
    const std::string run = dir() + "/signalled-" + std::to_string(signal);
    const SignalledRun stopped = signal_after_steps(train_args(run, 7), run, 3, {signal});
    ASSERT_TRUE(stopped.sent) << "the run ended before the signal";
    EXPECT_EQ(stopped.end_signal, 0) << stopped.output;
    EXPECT_EQ(stopped.status, 128 + signal) << stopped.output;
    const size_t done = step_losses(run).size();
    const std::string checkpoint = run + "/checkpoints/" + io::checkpoint_name(int64_t(done));
    EXPECT_PRED2(contains, stopped.output,
                 (signal == SIGINT ? "SIGINT" : "SIGTERM") + std::string(": stopped after step ") +
                     std::to_string(done) + " of 7; checkpoint '" + checkpoint + "'");
    EXPECT_PRED2(contains, stopped.output, "--resume auto");
    EXPECT_TRUE(fs::exists(checkpoint));
    EXPECT_FALSE(fs::exists(run + "/final.pth"));

    ProgramRun resumed = run_program(train_args(run, 7) + " --resume auto");
    ASSERT_EQ(resumed.status, 0) << resumed.output;
    expect_same_weights(reference + "/final.pth", run + "/final.pth");
    EXPECT_EQ(step_losses(run), step_losses(reference));
  }
}

// embed commits as it goes: a signal stops it after the batch, saying so; a rerun finishes.
TEST_F(TrainRun, EmbedStopsOnSigintAfterACommittedBatch) {
  const std::string out = dir() + "/store-interrupted";
  const std::string args = "--threads 2 embed --batch-size 1 --teacher " + dir() +
                           "/teacher.json --teacher-checkpoint " + teacher().file("weights.pth") +
                           " --data " + data_sample() + " --store " + out;
  auto committed = [&] {  // an index entry is 128 bytes
    if (!fs::is_directory(out)) return false;
    for (const auto& f : fs::directory_iterator(out))
      if (f.path().extension() == ".index" && fs::file_size(f.path()) >= 128) return true;
    return false;
  };
  const SignalledRun stopped = signal_when(args, out + ".log", committed, {SIGINT});
  ASSERT_TRUE(stopped.sent) << "embed ended before the signal";
  EXPECT_EQ(stopped.status, 128 + SIGINT) << stopped.output;
  EXPECT_PRED2(contains, stopped.output, "SIGINT: stopped after ");
  EXPECT_PRED2(contains, stopped.output, "all committed to '" + out + "'");
  ProgramRun rest = run_program(args + " --json");
  ASSERT_EQ(rest.status, 0) << rest.output;
  const nlohmann::json summary = nlohmann::json::parse(rest.output.substr(rest.output.find("{\n")));
  EXPECT_EQ(summary["selected"], 5);
  EXPECT_GE(summary["already_done"].get<int>(), 1) << "the committed batches were kept";
  EXPECT_EQ(summary["already_done"].get<int>() + summary["embedded"].get<int>(), 5);
  ProgramRun verify = run_program("store verify --store " + out);
  EXPECT_EQ(verify.status, 0) << verify.output;
}

TEST_F(TrainRun, EmbedRefusesAnEmptySelection) {
  const std::string out = dir() + "/store-empty";
  ProgramRun r = run_program("--threads 2 embed --fraction 0.000001 --teacher " + dir() +
                             "/teacher.json --teacher-checkpoint " + teacher().file("weights.pth") +
                             " --data " + data_sample() + " --store " + out);
  EXPECT_NE(r.status, 0);
  EXPECT_PRED2(contains, r.output, "keeps none of the 5 images");
  EXPECT_FALSE(fs::exists(out)) << "a refused embed made its store";
}

TEST_F(TrainRun, ASecondSignalEndsTheProgramAtOnce) {
  const std::string run = dir() + "/twice";
  const SignalledRun r = signal_after_steps(train_args(run, 7), run, 2, {SIGINT, SIGTERM});
  ASSERT_TRUE(r.sent) << "the run ended before the signals";
  // Which of the two the program handles first is the kernel's choice; the other ends it.
  EXPECT_TRUE(r.end_signal == SIGINT || r.end_signal == SIGTERM) << r.output;
}

TEST_F(TrainRun, ResumeOfAFinishedRunSaysSoAndTrainsNothing) {
  const std::string run = dir() + "/finished";
  fs::copy(reference_run(), run, fs::copy_options::recursive);
  fs::remove(run + "/final.pth");  // killed between the last checkpoint and final.pth
  ProgramRun r = run_program(train_args(run, 7) + " --resume auto");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_PRED2(contains, r.output, "is already complete: 7 of 7 steps done");
  EXPECT_PRED2(contains, r.output, "already complete: 7 steps were done before this call");
  expect_same_weights(reference_run() + "/final.pth", run + "/final.pth");
  EXPECT_EQ(step_losses(run), step_losses(reference_run()));
}

TEST_F(TrainRun, StartingAfreshLeavesNothingOfThePreviousRun) {
  // --resume auto without a valid checkpoint: a clean start, each step once in the metrics.
  const std::string run = dir() + "/afresh";
  fs::copy(reference_run(), run, fs::copy_options::recursive);
  fs::remove_all(run + "/checkpoints");
  ProgramRun r = run_program(train_args(run, 4) + " --resume auto");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_PRED2(contains, r.output, "starting afresh");
  EXPECT_EQ(step_losses(run).size(), 4u) << "the old run's 7 lines were kept";
  EXPECT_EQ(step_losses(run)[0], step_losses(reference_run())[0]);  // the same first step
  EXPECT_FALSE(fs::exists(run + "/checkpoints/step-00000007.pth"));
}

TEST_F(TrainRun, ResumePassesOverADamagedNewestCheckpoint) {
  const std::string& reference = reference_run();
  const std::string run = dir() + "/damaged";
  fs::copy(reference, run, fs::copy_options::recursive);
  fs::remove(run + "/final.pth");
  fs::resize_file(run + "/checkpoints/step-00000007.pth", 1000);  // a torn write
  ProgramRun resumed = run_program(train_args(run, 7) + " --resume auto");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_PRED2(contains, resumed.output, "passing over damaged checkpoint");
  EXPECT_PRED2(contains, resumed.output, "step-00000006.pth");
  expect_same_weights(reference + "/final.pth", run + "/final.pth");
}

// A damaged record of the store (here a cached image) met during training: skipped, named once
// in a warning (the store's own words), counted in the summary; the run goes on.
TEST_F(TrainRun, ADamagedStoreRecordIsSkippedAndCounted) {
  const std::string damaged = dir() + "/damaged-store";
  fs::copy(store(), damaged, fs::copy_options::recursive);
  std::string part, key;
  uint64_t offset = 0;
  {
    store::Reader reader(damaged);
    std::vector<std::string> keys;  // the training set's order: sorted keys
    for (const store::Entry& e : reader.entries())
      if (e.index.info.kind == store::Kind::embedding) keys.push_back(e.index.info.key);
    std::sort(keys.begin(), keys.end());
    key = keys.at(size_t(data::epoch_order(keys.size(), 7, 0, true).at(0)));  // read first

    const store::Entry* image = reader.find(store::Kind::image, key);
    ASSERT_TRUE(image);
    part = store::records_path(damaged, reader.parts()[image->part]);
    offset = image->index.offset;
  }
  std::string bytes = read_file(part);
  bytes[offset + 300] ^= 0x01;  // in the payload
  write_file_atomic(part, bytes);
  const std::string why = error_of([&] { store::Reader(damaged).image(key); });

  std::string args = train_args(dir() + "/skips", 2);  // 5 images, batch 2: one epoch
  args.replace(args.find(" --store " + store() + " "), store().size() + 9, " --store " + damaged);
  ProgramRun r = run_program(args);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(logged(r.output, "warning"), std::vector<std::string>{"skipping " + why}) << r.output;
  EXPECT_PRED2(contains, r.output,
               "\nbad records  1 skipped (damaged store records or unreadable images, each named "
               "in a warning)\n");
  // --strict: the first bad record stops the run, named.
  std::string strict = args;
  strict.replace(strict.find(dir() + "/skips"), (dir() + "/skips").size(), dir() + "/strict");
  ProgramRun stopped = run_program(strict + " --strict");
  EXPECT_NE(stopped.status, 0);
  EXPECT_EQ(logged(stopped.output, "error"), std::vector<std::string>{why}) << stopped.output;
}

TEST_F(TrainRun, ANewRunRefusesAFolderHoldingARunUnlessOverwrite) {
  ProgramRun again = run_program(train_args(reference_run(), 7));
  EXPECT_NE(again.status, 0);
  EXPECT_PRED2(contains, again.output, "holds a previous run");
  // Anything of a run counts, not only checkpoints: here a final.pth alone.
  const std::string run = dir() + "/only-final";
  fs::create_directories(run);
  fs::copy_file(reference_run() + "/final.pth", run + "/final.pth");
  const std::string before = sha256_file(run + "/final.pth");
  ProgramRun refused = run_program(train_args(run, 2));
  EXPECT_NE(refused.status, 0);
  EXPECT_PRED2(contains, refused.output,
               "run folder '" + run + "' holds a previous run (" + run +
                   "/final.pth): continue "
                   "it with --resume auto, replace it with --overwrite, or give another --out");
  EXPECT_EQ(sha256_file(run + "/final.pth"), before) << "a refused run changed the folder";
  ProgramRun replaced = run_program(train_args(run, 2) + " --overwrite");
  ASSERT_EQ(replaced.status, 0) << replaced.output;
  EXPECT_EQ(step_losses(run).size(), 2u);
  EXPECT_NE(sha256_file(run + "/final.pth"), before);
}

TEST_F(TrainRun, NonFiniteLossesAreSkippedThenStopTheRun) {
  io::StateDict weights = io::read_state_dict(reference_run() + "/final.pth");
  for (auto& [key, value] : weights)
    if (key == "neck.0.weight") value = value.clone().fill_(NAN);
  std::string init = dir() + "/nan.pth";
  io::write_state_dict(init, weights);
  const std::string run = dir() + "/nan";
  ProgramRun r = run_program(train_args(run, 5) + " --init " + init + " --max-nonfinite 2");
  EXPECT_NE(r.status, 0);
  EXPECT_PRED2(contains, r.output, "step skipped");
  EXPECT_PRED2(contains, r.output, "2 non-finite losses in a row");
  EXPECT_EQ(step_losses(run).size(), 1u);  // the second bad step stops the run before its record
}

TEST_F(TrainRun, AStoreOfAnotherTeacherIsRefused) {
  ProgramRun r = run_program(train_args(dir() + "/other", 1) + " --teacher vit_b");
  EXPECT_NE(r.status, 0);
  std::vector<std::string> errors = logged(r.output, "error");
  ASSERT_EQ(errors.size(), 1u) << r.output;
  expect_other_teacher_refused(errors[0], store(), "vit_b");
  // Other weights: each checksum with its own file, the store's (its manifest's name) and
  // the one given.
  const std::string other_weights = dir() + "/student.json";
  r = run_program(train_args(dir() + "/other", 1) + " --teacher-checkpoint " + other_weights);
  EXPECT_NE(r.status, 0);
  const nlohmann::json manifest = nlohmann::json::parse(std::ifstream(store() + "/manifest.json"));
  EXPECT_EQ(manifest["checkpoint_name"], "weights.pth");
  EXPECT_EQ(logged(r.output, "error"),
            std::vector<std::string>{
                "store '" + store() +
                "' was made by another teacher: a custom ViT encoder with weights 'weights.pth' "
                "(sha256 " +
                manifest["checkpoint_sha256"].get<std::string>().substr(0, 12) +
                "...), not the one given, a custom ViT encoder with weights '" + other_weights +
                "' (sha256 " + sha256_file(other_weights).substr(0, 12) +
                "...) (the same architecture, other weights). Give the teacher that made the "
                "store, or make a store of this teacher's embeddings with `samdistill embed` "
                "(another --store)"});
}

// A run folder made with relative paths works from another directory: its config.json holds
// them absolute. A --config's relative paths are read from the config's folder.
TEST_F(TrainRun, ARunFolderMadeWithRelativePathsWorksFromAnywhere) {
  fs::create_directories(dir() + "/cfgs");
  fs::copy_file(dir() + "/student.json", dir() + "/cfgs/student.json",
                fs::copy_options::overwrite_existing);
  const std::string steps = " --batch-size 2 --warmup-steps 1 --log-every 1 --seed 7";
  ProgramRun made = run_program_in(dir(),
                                   "--threads 2 train --store store --student-model "
                                   "cfgs/student.json --out runs/rel --max-steps 1" +
                                       steps);
  ASSERT_EQ(made.status, 0) << made.output;
  const nlohmann::json config =
      nlohmann::json::parse(std::ifstream(dir() + "/runs/rel/config.json"));
  EXPECT_EQ(config["store"], dir() + "/store");
  EXPECT_EQ(config["student_model"], dir() + "/cfgs/student.json");
  const std::string run = dir() + "/runs/rel";
  ProgramRun resumed =
      run_program_in("/", "--threads 2 train --out " + run + " --resume auto --max-steps 2");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_PRED2(contains, resumed.output, "steps        2 (1 in this call)");
  EXPECT_PRED2(contains, resumed.output,
               "resuming with another schedule than the run began with (max_steps 1 -> 2): 2 "
               "steps in all");
  const std::string exported = dir() + "/rel.pth";
  const std::string export_args = "export --student " + run + " --decoder-from " +
                                  teacher().file("weights.pth") + " --out " + exported;
  ProgramRun e = run_program_in("/", export_args);
  ASSERT_EQ(e.status, 0) << e.output;
  // An existing checkpoint is replaced only when asked, as a run folder.
  e = run_program_in("/", export_args);
  EXPECT_EQ(e.status, 1) << e.output;
  EXPECT_PRED2(contains, e.output, "export: --out '" + exported + "' exists: give --overwrite");
  e = run_program_in("/", export_args + " --overwrite");
  EXPECT_EQ(e.status, 0) << e.output;

  write_file_atomic(dir() + "/cfgs/c.json",
                    R"({"store": "../store", "student_model": "student.json", "max_steps": 1,
                        "batch_size": 2, "warmup_steps": 1})");
  ProgramRun configured = run_program_in(
      "/", "--threads 2 train --config " + dir() + "/cfgs/c.json --out " + dir() + "/runs/cfg");
  EXPECT_EQ(configured.status, 0) << configured.output;
}

// The weights of a train run (an encoder alone) need a decoder to predict: the refusal says how
// to get one; predict's mask is a grey PNG; checkpoint takes a run folder as the others do.
TEST_F(TrainRun, PredictAndCheckpointTakeATrainRunFolder) {
  const std::string run = reference_run();
  const std::string mask = dir() + "/mask.png";
  const std::string args = "predict --student " + run + " --image " + data_sample() +
                           "/sa_100003.jpg --point 100,100 --out " + mask;
  ProgramRun refused = run_program(args);
  EXPECT_EQ(refused.status, 1) << refused.output;
  EXPECT_PRED2(contains, refused.output,
               "holds an image encoder alone (a train run's weights): give --decoder-from");
  EXPECT_PRED2(contains, refused.output, "samdistill export --student " + run + " --decoder-from");
  ProgramRun predicted = run_program(args + " --decoder-from " + teacher().file("weights.pth"));
  ASSERT_EQ(predicted.status, 0) << predicted.output;
  const std::string png = read_file(mask);
  ASSERT_GT(png.size(), 26u);
  EXPECT_EQ(int(png[24]), 8) << "bit depth";
  EXPECT_EQ(int(png[25]), 0) << "colour type: grey";
  ProgramRun summary = run_program("checkpoint " + run);
  EXPECT_EQ(summary.status, 0) << summary.output;
  EXPECT_PRED2(contains, summary.output, "final.pth");
}

TEST_F(TrainRun, ConfigErrorsNameTheKey) {
  std::string bad = dir() + "/bad.json";
  std::ofstream(bad) << R"({"epochs": "many"})";
  ProgramRun r =
      run_program("train --config " + bad + " --store " + store() + " --out " + dir() + "/x");
  EXPECT_NE(r.status, 0);
  EXPECT_PRED2(contains, r.output, "key 'epochs' must be an integer, got \"many\"");
  r = run_program("train --store " + store() + " --out " + dir() + "/x --lr fast");
  EXPECT_NE(r.status, 0);
  EXPECT_PRED2(contains, r.output, "--lr: 'fast' is not a number");
}

// The loss is a choice: Huber (delta 1) is at most half the squared error of each element, so
// the first step (the same student and batch as the reference run's) shows which one ran.
TEST_F(TrainRun, HuberLossIsAChoiceWrittenToTheRunsConfig) {
  const std::string run = dir() + "/huber";
  ProgramRun r = run_program(train_args(run, 1) + " --loss huber");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(io::read_json_file(run + "/config.json").at("loss"), "huber");
  const double mse = step_losses(reference_run())[0], huber = step_losses(run)[0];
  EXPECT_GT(huber, 0);
  EXPECT_LE(huber, 0.5 * mse);
  r = run_program(train_args(dir() + "/l2", 1) + " --loss l2");
  EXPECT_NE(r.status, 0);
  EXPECT_PRED2(contains, r.output, "must be mse, huber or l1");
}

// bf16 on the CPU (LibTorch's autocast; weights, loss and AdamW stay fp32): the same seed and
// data learn as fp32 does, each step's loss within 3% of fp32's, and a SIGKILL then resume ends
// bitwise where an uninterrupted bf16 run ends.
TEST_F(TrainRun, Bf16OnTheCpuLearnsLikeFp32AndResumesExactly) {
  const std::vector<double> fp32 = step_losses(reference_run());
  const std::string whole = dir() + "/bf16", killed = dir() + "/bf16-killed";
  ProgramRun r = run_program(train_args(whole, 7) + " --amp bf16");
  ASSERT_EQ(r.status, 0) << r.output;
  const std::vector<double> bf16 = step_losses(whole);
  ASSERT_EQ(bf16.size(), fp32.size());
  for (size_t i = 0; i < bf16.size(); ++i)
    EXPECT_NEAR(bf16[i], fp32[i], 0.03 * fp32[i]) << "step " << i + 1;
  EXPECT_NE(bf16, fp32) << "the losses are fp32's to the last bit: bf16 did not run";

  ASSERT_TRUE(kill_after_steps(train_args(killed, 7) + " --amp bf16", killed, 3))
      << "the run ended before it could be killed";
  ProgramRun resumed = run_program(train_args(killed, 7) + " --amp bf16 --resume auto");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  expect_same_weights(whole + "/final.pth", killed + "/final.pth");
  EXPECT_EQ(step_losses(killed), bf16);
}

// recompute_stages trades memory for time and nothing else: the run ends on the same weights.
TEST_F(TrainRun, RecomputedStagesEndOnTheSameWeights) {
  const std::string run = dir() + "/recompute";
  ProgramRun r = run_program(train_args(run, 7) + " --recompute-stages 2");
  ASSERT_EQ(r.status, 0) << r.output;
  expect_same_weights(reference_run() + "/final.pth", run + "/final.pth");
}

TEST_F(TrainRun, RecomputeStagesOfAStudentWithoutTinyViTIsRefused) {
  std::string args = train_args(dir() + "/recompute-vit", 1) + " --recompute-stages 1";
  args.replace(args.find("/student.json"), 13, "/teacher.json");  // a ViT student
  ProgramRun r = run_program(args);
  EXPECT_NE(r.status, 0);
  EXPECT_PRED2(
      contains, r.output,
      "recompute_stages 1 applies to students with stages to recompute (TinyViT); this one "
      "has none");
}

TEST_F(TrainRun, Fp16IsRefusedOnTheCpuNamingBf16) {
  ProgramRun r = run_program(train_args(dir() + "/fp16", 1) + " --amp fp16 --device cpu");
  EXPECT_NE(r.status, 0);
  EXPECT_PRED2(contains, r.output,
               "amp 'fp16' needs a CUDA device (device is cpu); on CPUs use bf16");
}

TEST_F(TrainRun, ExportLoadsStrictlyAndGivesTheStudentsOutputs) {
  const std::string& run = reference_run();
  auto teacher = first_folder(false);
  std::string out = dir() + "/exported.pt";
  ProgramRun r = run_program("export --student " + run + " --decoder-from " +
                             teacher->file("weights.pth") + " --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;

  auto config = models::resolve_encoder(dir() + "/student.json");
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
  for (const auto& [key, value] : exported) {
    if (key.rfind("mask_decoder.", 0) == 0) {
      EXPECT_TRUE(at::equal(value, teacher_weights.at(key))) << key;
    }
  }
}

}  // namespace
}  // namespace sd::testing
