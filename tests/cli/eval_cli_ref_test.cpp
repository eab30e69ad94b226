// `samdistill eval` as a user runs it: the console table, the JSON report and the pictures.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/fixtures.h"

namespace fs = std::filesystem;

namespace sd::testing {
namespace {

TEST(EvalCli, ReportTableAndPictures) {
  SD_REQUIRE_FIXTURES();
  auto teacher = first_folder(false);
  ASSERT_TRUE(teacher);
  const std::string dir = make_temp_dir("samdistill-eval-cli");
  std::ofstream(dir + "/teacher.json") << teacher->config.dump();
  const std::string common = "--threads 2 eval --teacher " + dir +
                             "/teacher.json --teacher-checkpoint " + teacher->file("weights.pth") +
                             " --student " + teacher->file("weights.pth") + " --student-model " +
                             dir + "/teacher.json --data " + data_sample() +
                             " --max-images 1 --max-prompts-per-image 1";

  ProgramRun bad = run_program(common + " --prompts box,fgbg@x");
  EXPECT_NE(bad.status, 0);
  EXPECT_PRED2(contains, bad.output, "'fgbg@x' is not a prompt kind");

  ProgramRun run = run_program(common + " --prompts box,point --report " + dir +
                               "/report.json --vis " + dir + "/vis");
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_PRED2(contains, run.output, "teacher-GT");
  EXPECT_PRED2(contains, run.output, "box          off             1     1.0000");
  nlohmann::json report = nlohmann::json::parse(std::ifstream(dir + "/report.json"));
  EXPECT_EQ(report["miou"]["box"], 1.0);
  EXPECT_EQ(report["count"]["point"], 1);
  EXPECT_EQ(report["multimask"]["point"], "score");
  for (const char* key : {"miou_gt", "histogram", "worst", "timings"})
    EXPECT_TRUE(report.contains(key)) << key;
  EXPECT_EQ(report["worst"].size(), 2u);
  int pictures = 0;
  for (const auto& f : fs::directory_iterator(dir + "/vis")) {
    EXPECT_EQ(f.path().extension(), ".png");
    EXPECT_PRED2(contains, f.path().filename().string(), "_iou1.000");
    ++pictures;
  }
  EXPECT_EQ(pictures, 2);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sd::testing
