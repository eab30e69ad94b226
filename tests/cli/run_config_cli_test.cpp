// The config-driven commands (train, finetune): flags from the config tables, run as a user runs
// them.
#include <filesystem>

#include "common/fixtures.h"
#include "util/atomic_file.h"

namespace {

using sd::testing::contains;
using sd::testing::ProgramRun;
using sd::testing::run_program;

TEST(RunConfigCli, HelpShowsEachOptionsType) {
  ProgramRun train = run_program("train --help");
  ASSERT_EQ(train.status, 0) << train.output;
  for (const char* shown :
       {"--epochs INT", "--lr FLOAT", "--loss-ignore-padding=false turns it off", "--store TEXT",
        "--data LIST", "--device auto|cpu|cuda", "--amp off|bf16|fp16"})
    EXPECT_PRED2(contains, train.output, shown);
  ProgramRun finetune = run_program("finetune --help");
  ASSERT_EQ(finetune.status, 0) << finetune.output;
  for (const char* shown :
       {"--encoder-lr FLOAT", "--target teacher|gt", "--loss focal_dice_iou|bce_dice",
        "--prompts-per-image INT", "--batch-size INT"})
    EXPECT_PRED2(contains, finetune.output, shown);
  EXPECT_FALSE(contains(finetune.output, "--layer-decay")) << "a distillation key";
}

TEST(RunConfigCli, ValuesOfTheWrongKindAreRefusedSayingWhy) {
  const std::string out = sd::testing::make_temp_dir("sd-cli-runconfig");
  ProgramRun r = run_program("train --store s --out " + out + "/run --batch-size 2.5");
  EXPECT_NE(r.status, 0);
  EXPECT_PRED2(contains, r.output, "--batch-size: '2.5' is not an integer");
  r = run_program("train --store s --out " + out + "/run --amp fp8");
  EXPECT_NE(r.status, 0);
  EXPECT_PRED2(contains, r.output, "config key 'amp' = \"fp8\": must be off, bf16 or fp16");
  r = run_program("finetune --store s --student s.pth --out " + out + "/run --target truth");
  EXPECT_NE(r.status, 0);
  EXPECT_PRED2(contains, r.output, "must be teacher or gt");
  std::filesystem::remove_all(out);
}

// A yes/no key is a flag, as --strict is in every command; --key=false turns it off. The runs
// below stop at the next check, after the flags were taken.
TEST(RunConfigCli, YesNoKeysAreFlags) {
  const std::string out = sd::testing::make_temp_dir("sd-cli-runconfig");
  for (const char* flags :
       {"--strict --train-prompt-encoder", "--strict=false --loss-ignore-padding"}) {
    const std::string command =
        std::string(flags).find("padding") != std::string::npos
            ? "train --store " + out + "/none --out " + out + "/run "
            : "finetune --store s --student s.pth --target truth --out " + out + "/run ";
    ProgramRun r = run_program(command + flags);
    EXPECT_NE(r.status, 0);
    EXPECT_FALSE(contains(r.output, "not expected") || contains(r.output, "--help")) << r.output;
  }
  ProgramRun bad = run_program("train --store s --out " + out + "/run --strict=perhaps");
  EXPECT_NE(bad.status, 0);
  EXPECT_PRED2(contains, bad.output, "--strict");
  std::filesystem::remove_all(out);
}

// A config file's relative paths are read from its folder, the command line's from the working
// directory; an error about a value names where it came from.
TEST(RunConfigCli, PathsAreReadFromTheirConfigsFolderAndErrorsNameTheSource) {
  namespace fs = std::filesystem;
  const std::string dir = sd::testing::make_temp_dir("sd-cli-runconfig");
  fs::create_directories(dir + "/cfgs");
  sd::write_file_atomic(dir + "/cfgs/c.json", R"({"store": "../nowhere", "max_steps": 1})");
  ProgramRun r = run_program("train --config " + dir + "/cfgs/c.json --out " + dir + "/run");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_PRED2(contains, r.output,
               "store '" + dir + "/nowhere' does not exist (from " + dir + "/cfgs/c.json)");
  r = run_program("train --config " + dir + "/cfgs/c.json --store elsewhere --out " + dir + "/run");
  EXPECT_PRED2(
      contains, r.output,
      "store '" + fs::current_path().string() + "/elsewhere' does not exist (from --store)");
  sd::write_file_atomic(dir + "/cfgs/bad.json", R"({"store": "..", "lr": -1})");
  r = run_program("train --config " + dir + "/cfgs/bad.json --out " + dir + "/run");
  EXPECT_PRED2(contains, r.output,
               "config key 'lr' = -1: must be > 0 (from " + dir + "/cfgs/bad.json)");
  r = run_program("train --config " + dir + "/cfgs/c.json --out " + dir + "/run --lr -2");
  EXPECT_PRED2(contains, r.output, "config key 'lr' = -2.0: must be > 0 (from --lr)");
  fs::remove_all(dir);
}

// A run's --out is a folder: an existing file is refused saying so, before any work.
TEST(RunConfigCli, AFileAsARunsOutIsRefused) {
  const std::string dir = sd::testing::make_temp_dir("sd-cli-runconfig");
  sd::write_file_atomic(dir + "/file", "x");
  ProgramRun r = run_program("train --store " + dir + " --out " + dir + "/file");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_PRED2(contains, r.output, "--out '" + dir + "/file' is a file");
  std::filesystem::remove_all(dir);
}

}  // namespace
