// `samdistill demo` end to end, shortened: two images (one batch), one evaluated, a small
// student, two training steps.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "common/browser.h"
#include "common/events.h"
#include "common/fixtures.h"
#include "common/pipeline.h"

namespace fs = std::filesystem;

namespace sd::testing {
namespace {

// Run outside the checkout, the default data/sample is not there: said before anything is written.
TEST(DemoCli, ChecksItsInputsBeforeWriting) {
  const std::string dir = make_temp_dir("samdistill-demo");
  ProgramRun r = run_program_in(dir, "demo --out d");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_PRED2(contains, r.output, "demo: --data 'data/sample' does not exist");
  EXPECT_PRED2(contains, r.output, "run the demo from the checkout, or give --data");
  EXPECT_FALSE(fs::exists(dir + "/d")) << "the demo wrote before checking its inputs";
  r = run_program_in(dir, "demo --out d --data " + data_sample() + " --student-model nothing.json");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_PRED2(contains, r.output, "encoder 'nothing.json' is neither a preset");
  EXPECT_FALSE(fs::exists(dir + "/d"));
  fs::remove_all(dir);
}

TEST(DemoCli, RunsEndToEndAndSaysWhereEverythingIs) {
  const std::string dir = make_temp_dir("samdistill-demo");
  fs::create_directories(dir + "/data");
  for (const char* id : {"sa_100001", "sa_100002"})
    for (const char* ext : {".jpg", ".json"})
      fs::copy_file(data_sample() + "/" + id + ext, dir + "/data/" + id + ext);
  std::ofstream(dir + "/student.json")
      << R"({"embed_dims": [16, 32, 64, 320], "depths": [1, 1, 1, 1],
    "num_heads": [1, 1, 2, 5], "window_sizes": [7, 7, 14, 7]})";
  const std::string out = dir + "/demo";
  const std::string args = "--threads 2 demo --out " + out + " --data " + dir +
                           "/data --student-model " + dir +
                           "/student.json --steps 2 --max-images 1 --max-prompts-per-image 1 "
                           "--prompts box,point";
  ProgramRun run = run_program(args);
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_PRED2(contains, run.output, "RANDOMLY INITIALISED");
  EXPECT_PRED2(contains, run.output, "before    after   change");
  EXPECT_PRED2(contains, run.output, "distillation loss");
  for (const char* file :
       {"/teacher.pth", "/store/manifest.json", "/student_init.pth", "/run/final.pth",
        "/run/metrics.jsonl", "/eval-before.json", "/eval-after.json"}) {
    EXPECT_TRUE(fs::exists(out + file)) << file;
    EXPECT_PRED2(contains, run.output, fs::path(out + file).parent_path().string()) << file;
  }
  nlohmann::json after = nlohmann::json::parse(std::ifstream(out + "/eval-after.json"));
  EXPECT_EQ(after["count"]["box"], 1);
  EXPECT_EQ(after["count"]["point"], 1);
  for (const char* pictures : {"/vis-before", "/vis"}) {
    int pngs = 0;
    for (const auto& f : fs::directory_iterator(out + pictures))
      pngs += f.path().extension() == ".png";
    EXPECT_EQ(pngs, 2) << pictures;
  }
  // Its run folder opens in TensorBoard: the event file's loss at each step is metrics.jsonl's
  // (decoded with TensorBoard's message definitions; skipped without protoc).
  if (can_decode_events()) {
    std::map<int64_t, float> loss;
    for (const auto& f : fs::directory_iterator(out + "/run"))
      if (f.path().filename().string().rfind("events.out.tfevents.", 0) == 0)
        for (const DecodedEvent& e : decode_events(f.path().string()))
          if (e.has_scalar && e.tag == "loss") loss[e.step] = e.scalar;
    const std::vector<double> expected = step_losses(out + "/run");
    ASSERT_EQ(loss.size(), expected.size());
    size_t i = 0;
    for (const auto& [step, value] : loss) EXPECT_EQ(value, float(expected[i++])) << step;
  }
  // Its eval page renders in a browser without console errors (skipped without Chromium).
  if (const std::string browser = chromium(); !browser.empty()) {
    std::string log;
    const std::string dom = rendered_dom(browser, out + "/report/index.html", "#sort=iou", &log);
    EXPECT_EQ(page_state(dom).rfind("sorted:iou first:", 0), 0u) << page_state(dom);
    EXPECT_EQ(log.find("CONSOLE"), std::string::npos) << "the page logged:\n" << log;
  }

  // README command 1 twice in a row: the second demo replaces the first's output, saying so,
  // and ends with the same figures.
  ProgramRun again = run_program(args);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_PRED2(contains, again.output,
               "demo: replacing the previous demo's output in '" + out + "'");
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(out + "/eval-after.json"))["miou"], after["miou"]);

  // A folder that is not a demo's is never emptied.
  const std::string other = dir + "/mine";
  fs::create_directories(other);
  std::ofstream(other + "/notes.txt") << "keep me";
  ProgramRun refused = run_program("demo --out " + other + " --data " + dir + "/data");
  EXPECT_NE(refused.status, 0);
  EXPECT_PRED2(contains, refused.output,
               "demo: '" + other + "' is not empty and holds no earlier demo (demo-output.txt)");
  EXPECT_TRUE(fs::exists(other + "/notes.txt"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sd::testing
