// `samdistill predict` as a user runs it, with the fixture SAM: masks as PNGs, an overlay,
// the predicted IoUs, and errors that name the flag.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/fixtures.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;

namespace sd::testing {
namespace {

TEST(PredictCli, MasksOverlayAndErrors) {
  SD_REQUIRE_FIXTURES();
  auto sam = first_folder(false);
  ASSERT_TRUE(sam);
  const std::string dir = make_temp_dir("samdistill-predict");
  std::ofstream(dir + "/model.json") << sam->config.dump();
  const std::string common = "--threads 2 predict --student " + sam->file("weights.pth") +
                             " --student-model " + dir + "/model.json --image " +
                             sam->file("image.jpg");
  ProgramRun run = run_program(common + " --point 40,30 --point 10,12,0 --multimask --out " + dir +
                               "/mask.png --overlay " + dir + "/overlay.png");
  ASSERT_EQ(run.status, 0) << run.output;
  for (const char* file : {"/mask.png", "/mask_1.png", "/mask_2.png", "/overlay.png"}) {
    ASSERT_TRUE(fs::exists(dir + file)) << file;
    EXPECT_EQ(read_file(dir + file).substr(1, 3), "PNG") << file;
  }
  EXPECT_PRED2(contains, run.output, "predicted IoU");
  EXPECT_PRED2(contains, run.output, "(best)");

  ProgramRun one = run_program(common + " --box 5,5,60,50 --out " + dir + "/single.png");
  ASSERT_EQ(one.status, 0) << one.output;
  EXPECT_FALSE(fs::exists(dir + "/single_1.png"));

  ProgramRun bad = run_program(common + " --box 1,2,3 --out " + dir + "/x.png");
  EXPECT_NE(bad.status, 0);
  EXPECT_PRED2(contains, bad.output, "--box '1,2,3'");
  ProgramRun none = run_program(common + " --out " + dir + "/x.png");
  EXPECT_PRED2(contains, none.output, "give --point and/or --box");
  // Prompts are image pixels: outside the image is refused, naming the flag and the image.
  ProgramRun outside = run_program(common + " --point 5000,-30 --out " + dir + "/x.png");
  EXPECT_NE(outside.status, 0);
  EXPECT_PRED2(contains, outside.output, "--point 5000,-30 lies outside the ");
  EXPECT_PRED2(contains, outside.output, " (WxH) image '" + sam->file("image.jpg") + "'");
  ProgramRun upside_down = run_program(common + " --box 60,50,5,5 --out " + dir + "/x.png");
  EXPECT_NE(upside_down.status, 0);
  EXPECT_PRED2(contains, upside_down.output, "--box 60,50,5,5 is not x0,y0,x1,y1 with x0 <= x1");
  EXPECT_FALSE(fs::exists(dir + "/x.png"));
  fs::remove_all(dir);
}

// A full SAM checkpoint shows its encoder: --student-model may be left out; one that does not
// fit is refused naming both. (--checkpoint and --model are the older names, still taken.)
TEST(PredictCli, TheModelComesFromTheWeights) {
  SD_REQUIRE_FIXTURES();
  for (const ModelFolder& sam : model_folders()) {
    SCOPED_TRACE(sam.path);
    const std::string dir = make_temp_dir("samdistill-predict");
    std::ofstream(dir + "/model.json") << sam.config.dump();
    const std::string common = "--threads 2 predict --checkpoint " + sam.file("weights.pth") +
                               " --image " + sam.file("image.jpg") + " --box 5,5,60,50";
    ProgramRun given =
        run_program(common + " --model " + dir + "/model.json --out " + dir + "/given.png");
    ASSERT_EQ(given.status, 0) << given.output;
    ProgramRun shown = run_program(common + " --out " + dir + "/shown.png");
    ASSERT_EQ(shown.status, 0) << shown.output;
    EXPECT_EQ(read_file(dir + "/shown.png"), read_file(dir + "/given.png"));

    const std::string other = sam.tiny_vit ? "vit_b" : "vit_t";
    ProgramRun wrong = run_program(common + " --model " + other + " --out " + dir + "/x.png");
    EXPECT_NE(wrong.status, 0);
    EXPECT_PRED2(contains, wrong.output,
                 "--student-model '" + other + "' does not fit the weights '" +
                     sam.file("weights.pth") + "'");
    fs::remove_all(dir);
  }
}

}  // namespace
}  // namespace sd::testing
