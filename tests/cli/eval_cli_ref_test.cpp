// `samdistill eval` as a user runs it: the console table, the JSON report, the pictures and
// the TensorBoard event file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "common/events.h"
#include "common/fixtures.h"
#include "io/tensorboard.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;

namespace sd::testing {
namespace {

TEST(EvalCli, ReportTableAndPicturesAndTensorBoard) {
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
                               "/report.json --vis " + dir + "/vis --tensorboard " + dir + "/tb");
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
    if (f.path().filename() == "samdistill-pictures.txt") continue;  // marks the folder ours
    EXPECT_EQ(f.path().extension(), ".png");
    EXPECT_PRED2(contains, f.path().filename().string(), "_iou1.000");
    ++pictures;
  }
  EXPECT_EQ(pictures, 2);

  // --tensorboard: one event file, read back with protoc's decoder of TensorBoard's messages:
  // the report's mIoU of each kind at step 0, and each --vis picture as an image.
  EXPECT_PRED2(contains, run.output, "TensorBoard: " + dir + "/tb");
  const std::vector<std::string> files = io::event_files(dir + "/tb");
  ASSERT_EQ(files.size(), 1u);
  if (!can_decode_events()) {
    fs::remove_all(dir);
    GTEST_SKIP() << "built without protobuf and protoc: the event file is not decoded";
  }
  std::map<std::string, float> scalars;
  std::map<std::string, std::string> images;
  for (const DecodedEvent& e : decode_events(files[0])) {
    if (e.has_scalar || e.has_image) {
      EXPECT_EQ(e.step, 0) << e.tag;
    }
    if (e.has_scalar) scalars[e.tag] = e.scalar;
    if (e.has_image) {
      EXPECT_GT(e.width, 0) << e.tag;
      EXPECT_GT(e.height, 0) << e.tag;
      images[e.tag] = e.png;
    }
  }
  std::map<std::string, float> miou;
  for (const auto& [kind, value] : report["miou"].items())
    miou["eval/miou/" + kind] = value.get<float>();
  EXPECT_EQ(scalars, miou);
  ASSERT_EQ(images.size(), 2u);
  for (const auto& w : report["worst"]) {
    const std::string tag = "eval/" + w["kind"].get<std::string>() + "/" +
                            w["image"].get<std::string>() + "_" +
                            std::to_string(w["annotation"].get<int64_t>());
    ASSERT_TRUE(images.count(tag)) << tag;
    bool same_as_a_picture = false;
    for (const auto& f : fs::directory_iterator(dir + "/vis"))
      same_as_a_picture |= read_file(f.path().string()) == images[tag];
    EXPECT_TRUE(same_as_a_picture) << tag << ": not the PNG of a --vis picture";
  }
  fs::remove_all(dir);
}

// A bad record does not stop the evaluation: it is skipped, and the report says which and why
// (the JSON's "skipped" and the table's footnote, the words of data stats); --strict stops.
// --amp bf16 runs the student (here the teacher's own weights) under CPU autocast, the teacher
// in fp32: its box masks stay the teacher's but for bf16's rounding.
TEST(EvalCli, Bf16StudentOnTheCpuKeepsTheTeachersMasks) {
  SD_REQUIRE_FIXTURES();
  auto teacher = first_folder(false);
  ASSERT_TRUE(teacher);
  const std::string dir = make_temp_dir("samdistill-eval-bf16");
  std::ofstream(dir + "/teacher.json") << teacher->config.dump();
  ProgramRun run = run_program(
      "--threads 2 eval --amp bf16 --prompts box --teacher " + dir +
      "/teacher.json --teacher-checkpoint " + teacher->file("weights.pth") + " --student " +
      teacher->file("weights.pth") + " --student-model " + dir + "/teacher.json --data " +
      data_sample() + " --max-images 1 --max-prompts-per-image 4 --report " + dir + "/report.json");
  ASSERT_EQ(run.status, 0) << run.output;
  const nlohmann::json report = nlohmann::json::parse(std::ifstream(dir + "/report.json"));
  EXPECT_EQ(report["count"]["box"], 4);
  EXPECT_GT(report["miou"]["box"].get<double>(), 0.95) << report["miou"];
  fs::remove_all(dir);
}

TEST(EvalCli, BadRecordsAreSkippedSayingWhy) {
  SD_REQUIRE_FIXTURES();
  auto teacher = first_folder(false);
  ASSERT_TRUE(teacher);
  const std::string dir = make_temp_dir("samdistill-eval-bad"), data = dir + "/data";
  fs::create_directories(data);
  const std::string sample = data_sample() + "/sa_100003";
  fs::copy_file(sample + ".jpg", data + "/sa_1.jpg");
  fs::copy_file(sample + ".json", data + "/sa_1.json");
  const std::string jpg = read_file(sample + ".jpg");
  write_file_atomic(data + "/sa_2.jpg", jpg.substr(0, jpg.size() / 2));  // truncated
  fs::copy_file(sample + ".json", data + "/sa_2.json");
  fs::copy_file(sample + ".jpg", data + "/sa_3.jpg");
  write_file_atomic(data + "/sa_3.json", read_file(sample + ".json").substr(0, 100));
  std::ofstream(dir + "/teacher.json") << teacher->config.dump();
  const std::string common = "--threads 2 eval --teacher " + dir +
                             "/teacher.json --teacher-checkpoint " + teacher->file("weights.pth") +
                             " --student " + teacher->file("weights.pth") + " --student-model " +
                             dir + "/teacher.json --data " + data +
                             " --max-prompts-per-image 1 --prompts box";

  ProgramRun stats = run_program("data stats --json --data " + data);
  ASSERT_EQ(stats.status, 0) << stats.output;
  const nlohmann::json skipped =
      nlohmann::json::parse(stats.output.substr(stats.output.find("{\n")))["skipped"];
  ASSERT_EQ(skipped.size(), 2u);
  EXPECT_EQ(skipped[0]["file"], data + "/sa_2.jpg");
  EXPECT_EQ(skipped[0]["reason"], "truncated JPEG (no end-of-image marker before the data ends)");
  EXPECT_EQ(skipped[1]["file"], data + "/sa_3.json");

  ProgramRun run = run_program(common + " --report " + dir + "/report.json");
  ASSERT_EQ(run.status, 0) << run.output;
  const nlohmann::json report = nlohmann::json::parse(std::ifstream(dir + "/report.json"));
  EXPECT_EQ(report["images"], 1);
  EXPECT_EQ(report["count"]["box"], 1);
  EXPECT_EQ(report["skipped"], skipped);
  std::string footnote = "skipped 2 images (bad records, not evaluated):\n";
  for (const auto& s : skipped)
    footnote += "  " + s["file"].get<std::string>() + ": " + s["reason"].get<std::string>() + "\n";
  EXPECT_PRED2(contains, run.output, "\n1 images, 1 prompts; ");
  EXPECT_PRED2(contains, run.output, " s\n" + footnote);

  ProgramRun strict = run_program(common + " --strict");
  EXPECT_NE(strict.status, 0);
  EXPECT_EQ(
      logged(strict.output, "error"),
      std::vector<std::string>{data + "/sa_2.jpg: " + skipped[0]["reason"].get<std::string>()});
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sd::testing
