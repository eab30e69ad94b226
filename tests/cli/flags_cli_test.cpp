// Flags mean one thing everywhere (README): where global options go, how lists are written,
// which seed a --seed is, what an empty selection does.
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/fixtures.h"

namespace fs = std::filesystem;

namespace sd::testing {
namespace {

nlohmann::json stats_of(const ProgramRun& run) {
  return nlohmann::json::parse(run.output.substr(run.output.find('{')));
}

TEST(FlagsCli, GlobalOptionsGoBeforeOrAfterTheSubcommand) {
  const std::string data = " --json --data " + data_sample();
  ProgramRun after = run_program("data stats --threads 1" + data);
  ASSERT_EQ(after.status, 0) << after.output;
  ProgramRun before = run_program("--threads 1 data stats" + data);
  ASSERT_EQ(before.status, 0) << before.output;
  EXPECT_EQ(stats_of(after), stats_of(before));
  ProgramRun negative = run_program("--threads -3 data stats" + data);
  EXPECT_NE(negative.status, 0);
  EXPECT_PRED2(contains, negative.output, "--threads");
}

// --data takes folders space- or comma-separated, in every command.
TEST(FlagsCli, DataFoldersAreSpaceOrCommaSeparated) {
  const std::string dir = make_temp_dir("sd-cli-flags");
  int i = 0;
  for (const auto& f : fs::directory_iterator(data_sample())) {
    if (f.path().extension() != ".jpg") continue;
    const std::string part = dir + (i++ % 2 ? "/a" : "/b");
    fs::create_directories(part);
    for (const char* ext : {".jpg", ".json"}) {
      fs::path file = f.path();
      file.replace_extension(ext);
      fs::copy_file(file, part + "/" + file.filename().string());
    }
  }
  ProgramRun spaced = run_program("data stats --json --data " + dir + "/a " + dir + "/b");
  ProgramRun commas = run_program("data stats --json --data " + dir + "/a," + dir + "/b");
  ASSERT_EQ(spaced.status, 0) << spaced.output;
  ASSERT_EQ(commas.status, 0) << commas.output;
  EXPECT_EQ(stats_of(spaced)["images"], 5);
  EXPECT_EQ(stats_of(spaced), stats_of(commas));
  // train's --data (a config key) takes both too: the second folder is not a stray argument.
  ProgramRun train = run_program("train --store " + dir + "/no-store --out " + dir +
                                 "/run --data " + dir + "/a " + dir + "/b");
  EXPECT_NE(train.status, 0);
  EXPECT_FALSE(contains(train.output, "not expected")) << train.output;
  EXPECT_PRED2(contains, train.output, dir + "/no-store");
  fs::remove_all(dir);
}

// --seed seeds a run (weights, order, prompts); the hashed selection's seed is --subset-seed.
TEST(FlagsCli, TheSelectionsSeedIsSubsetSeed) {
  const std::string data = " --json --fraction 0.5 --data " + data_sample();
  ProgramRun seeded = run_program("data stats --subset-seed 3" + data);
  ASSERT_EQ(seeded.status, 0) << seeded.output;
  ProgramRun old_name = run_program("data stats --seed 3" + data);
  EXPECT_NE(old_name.status, 0);
  EXPECT_PRED2(contains, old_name.output, "--seed");
}

// One default device everywhere: CUDA when present, else the CPU; every command's flags come
// from its table, so that the device is the same word everywhere.
TEST(FlagsCli, EveryDeviceDefaultsToAuto) {
  for (const char* command : {"embed", "eval", "predict", "segment", "train", "finetune"}) {
    ProgramRun help = run_program(std::string(command) + " --help");
    EXPECT_PRED2(contains, help.output, "--device auto|cpu|cuda") << command;
    EXPECT_PRED2(contains, help.output, "(default \"auto\")") << command;
  }
}

// The options of eval, embed, predict, segment and export are tables too: each flag shows its
// type, an enum its words, and a value the table refuses is named with the flag it came from.
TEST(FlagsCli, CommandOptionsComeFromTheirTables) {
  const std::map<std::string, std::vector<std::string>> shown = {
      {"eval",
       {"--student-decoder teacher|own|auto", "--multimask auto|score|oracle|off",
        "--amp off|bf16|fp16", "--max-prompts-per-image INT", "--prompt-seed INT",
        "--fraction FLOAT", "--data LIST", "--strict"}},
      {"embed", {"--dtype fp16|bf16|fp32|int8", "--batch-size INT", "--shard TEXT"}},
      {"predict", {"--student,--checkpoint TEXT", "--point LIST", "--multimask"}},
      {"segment", {"--student,--checkpoint TEXT", "--format TEXT", "--points-per-side INT"}},
      {"export", {"--format pt|onnx", "--quantize off|int8", "--return-single-mask"}},
      {"data stats", {"--subset-seed INT", "--val-fraction FLOAT", "--json"}}};
  for (const auto& [command, flags] : shown) {
    ProgramRun help = run_program(command + " --help");
    ASSERT_EQ(help.status, 0) << help.output;
    for (const std::string& flag : flags) EXPECT_PRED2(contains, help.output, flag) << command;
  }
  ProgramRun decoder = run_program("eval --student s.pth --data d --student-decoder mine");
  EXPECT_EQ(decoder.status, 1) << decoder.output;
  EXPECT_PRED2(contains, decoder.output,
               "config key 'student_decoder' = \"mine\": must be teacher, own or auto (from "
               "--student-decoder)");
  ProgramRun dtype =
      run_program("embed --teacher-checkpoint t.pth --data d --store s --dtype uint8");
  EXPECT_EQ(dtype.status, 1) << dtype.output;
  EXPECT_PRED2(contains, dtype.output,
               "config key 'dtype' = \"uint8\": must be fp16, bf16, fp32 or int8 (uint8 is for "
               "images) (from "
               "--dtype)");
  ProgramRun format = run_program("export --student s.pth --out o --format tar");
  EXPECT_EQ(format.status, 1) << format.output;
  EXPECT_PRED2(contains, format.output, "must be pt or onnx (from --format)");
  ProgramRun missing = run_program("predict --image i.png --out o.png --point 1,2");
  EXPECT_NE(missing.status, 0);
  EXPECT_PRED2(contains, missing.output, "--student");
}

// A selection of no image is an error in every command, not a success with nothing done.
TEST(FlagsCli, AnEmptySelectionIsAnError) {
  // (embed: TrainRun.EmbedRefusesAnEmptySelection)
  for (const char* command : {"data stats --json", "eval --student none.pth --store none"}) {
    ProgramRun none =
        run_program(std::string(command) + " --fraction 0.000001 --data " + data_sample());
    EXPECT_EQ(none.status, 1) << command << "\n" << none.output;
    EXPECT_PRED2(contains, none.output,
                 "the selection (--fraction 1e-06) keeps none of the 5 images");
  }
  const std::string empty = make_temp_dir("sd-cli-empty");
  ProgramRun nothing = run_program("data stats --data " + empty);
  EXPECT_EQ(nothing.status, 1) << nothing.output;
  EXPECT_PRED2(contains, nothing.output, "no images selected from --data");
  fs::remove_all(empty);
}

// A mistyped flag or command gets the nearest one; a flag may be spelt with underscores, as
// its config key.
TEST(FlagsCli, MistakesGetTheNearestFlagOrCommand) {
  ProgramRun flag = run_program("data stats --dta " + data_sample());
  EXPECT_NE(flag.status, 0);
  EXPECT_PRED2(contains, flag.output, "unknown option '--dta' for stats: did you mean '--data'?");
  ProgramRun store = run_program("train --stor s --out o");
  EXPECT_PRED2(contains, store.output,
               "unknown option '--stor' for train: did you mean '--store'?");
  ProgramRun command = run_program("trian --store s");
  EXPECT_NE(command.status, 0);
  EXPECT_PRED2(contains, command.output, "unknown command 'trian'");
  EXPECT_PRED2(contains, command.output, "did you mean 'train'?");
  ProgramRun far = run_program("train --zzzzzzzz 1 --out o");
  EXPECT_PRED2(contains, far.output, "unknown option '--zzzzzzzz' for train");
  EXPECT_FALSE(contains(far.output, "did you mean")) << far.output;
  // Underscores: the flag is taken (the value's own check answers), in flags of every kind.
  ProgramRun underscored = run_program("train --store s --out o --batch_size 2.5");
  EXPECT_PRED2(contains, underscored.output, "--batch-size: '2.5' is not an integer");
  ProgramRun global = run_program("data stats --json --dist_timeout 5 --data " + data_sample());
  EXPECT_EQ(global.status, 0) << global.output;
}

}  // namespace
}  // namespace sd::testing
