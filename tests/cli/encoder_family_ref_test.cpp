// Bring your own student: an encoder family defined in the tests alone (common/conv_family.h),
// registered with models/encoder_family.h, goes through train -> export -> checkpoint -> eval ->
// predict as the program runs them (sd::cli::run in this process, which knows the family).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/app.h"
#include "common/conv_family.h"
#include "common/pipeline.h"
#include "io/checkpoint.h"
#include "io/config_table.h"
#include "io/state_dict.h"
#include "models/config.h"

namespace fs = std::filesystem;

namespace sd::testing {
namespace {

using nlohmann::json;

// `samdistill <args>` run by sd::cli::run in this process: its exit status and stdout.
ProgramRun run_here(const std::string& args) {
  std::vector<std::string> words{"samdistill"};
  std::istringstream in(args);
  for (std::string word; in >> word;) words.push_back(word);
  std::vector<char*> argv;
  for (std::string& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);
  std::ostringstream out;
  struct Restore {
    std::streambuf* old;
    ~Restore() { std::cout.rdbuf(old); }
  } restore{std::cout.rdbuf(out.rdbuf())};
  ProgramRun r;
  r.status = cli::run(int(words.size()), argv.data());
  r.output = out.str();
  return r;
}

class EncoderFamilyRun : public PipelineSuite {
 protected:
  static void SetUpTestSuite() {
    static const bool registered = (models::register_encoder_family(ConvConfig::family()), true);
    (void)registered;
    if (!fixtures_present()) return;
    make_folder("samdistill-family", 0);
    ProgramRun embed = embed_sample();
    ASSERT_EQ(embed.status, 0) << embed.output;
  }
};

// train -> export -> checkpoint -> eval -> predict of a student `preset`, whose encoder's
// first key is `first_key`; the losses of its 6 steps.
std::vector<double> train_export_serve(const std::string& dir, const std::string& teacher_weights,
                                       const std::string& preset, const std::string& first_key,
                                       const std::string& family) {
  const std::string run = dir + "/run_" + preset, sam = dir + "/" + preset + "_sam.pth";
  ProgramRun train = run_here("--threads 2 train --store " + dir + "/store --out " + run +
                              " --student-model " + preset +
                              " --batch-size 2 --max-steps 6 "
                              "--warmup-steps 1 --lr 0.001 --log-every 1 --seed 7");
  EXPECT_EQ(train.status, 0) << train.output;
  const std::vector<double> loss = step_losses(run);
  EXPECT_EQ(io::read_state_dict(run + "/final.pth").front().first, first_key);
  ProgramRun exported =
      run_here("export --student " + run + " --decoder-from " + teacher_weights + " --out " + sam);
  EXPECT_EQ(exported.status, 0) << exported.output;
  EXPECT_PRED2(contains, exported.output, "(" + preset + " encoder)");
  EXPECT_EQ(io::read_state_dict(sam).front().first, "image_encoder." + first_key);
  ProgramRun summary = run_here("checkpoint --json " + sam);
  EXPECT_EQ(summary.status, 0) << summary.output;
  const json encoder = json::parse(summary.output)["encoder"];
  EXPECT_EQ(encoder["family"], family);
  EXPECT_EQ(encoder["preset"], preset);
  EXPECT_EQ(encoder["prefix"], "image_encoder.");
  ProgramRun table = run_here("checkpoint " + sam);
  EXPECT_PRED2(contains, table.output, family + " (");
  EXPECT_PRED2(contains, table.output, "): " + preset + ", under 'image_encoder.'");
  // The architecture from what the exported weights show (no --student-model).
  ProgramRun eval = run_here(
      "--threads 2 eval --teacher " + dir + "/teacher.json --teacher-checkpoint " +
      teacher_weights + " --student " + sam + " --data " + data_sample() +
      " --max-images 1 --max-prompts-per-image 2 --prompts box --report " + dir + "/report.json");
  EXPECT_EQ(eval.status, 0) << eval.output;
  const json report = json::parse(std::ifstream(dir + "/report.json"));
  EXPECT_EQ(report["count"]["box"], 2);
  EXPECT_GE(report["miou"]["box"].get<double>(), 0.0);
  EXPECT_LE(report["miou"]["box"].get<double>(), 1.0);
  ProgramRun predict = run_here("predict --checkpoint " + sam + " --image " + data_sample() +
                                "/sa_100001.jpg --box 100,100,600,500 --out " + dir + "/mask.png");
  EXPECT_EQ(predict.status, 0) << predict.output;
  EXPECT_TRUE(fs::is_regular_file(dir + "/mask.png"));
  EXPECT_PRED2(contains, predict.output, "predicted IoU");
  return loss;
}

TEST_F(EncoderFamilyRun, TrainsExportsAndServesAFamilyOfTheTests) {
  EXPECT_PRED2(contains, models::encoder_presets_in_words(), ", conv_8");
  const std::vector<double> loss = train_export_serve(dir(), teacher().file("weights.pth"),
                                                      "conv_8", "patch.weight", "TestConv");
  ASSERT_EQ(loss.size(), 6u);
  EXPECT_LT(loss.back(), loss.front()) << ::testing::PrintToString(loss);
  ProgramRun summary = run_here("checkpoint --json " + dir() + "/conv_8_sam.pth");
  EXPECT_EQ(json::parse(summary.output)["encoder"]["conv_width"], 8);
}

// NanoSAM's ResNet18 student, a family of src/models, goes the same way.
TEST_F(EncoderFamilyRun, NanoSamsResNet18TrainsExportsAndServes) {
  const std::vector<double> loss = train_export_serve(dir(), teacher().file("weights.pth"),
                                                      "resnet18", "pos_embedding", "ResNet");
  ASSERT_EQ(loss.size(), 6u);
  for (double l : loss) EXPECT_TRUE(std::isfinite(l)) << ::testing::PrintToString(loss);
}

}  // namespace
}  // namespace sd::testing
