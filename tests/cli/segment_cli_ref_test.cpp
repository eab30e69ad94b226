// `samdistill segment` as a user runs it, with the fixture SAM on the small images of
// tests/segment/fixtures: SAM's output files, the Python reference's masks, resuming, box
// prompts, and errors that name the flag.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/fixtures.h"
#include "io/config.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;

namespace sd::testing {
namespace {

size_t lines_of(const std::string& path) {
  std::stringstream in(read_file(path));
  size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

TEST(SegmentCli, EverythingFormatsResumeAndPrompts) {
  SD_REQUIRE_FIXTURES();
  auto sam = first_folder(true);
  ASSERT_TRUE(sam);
  const std::string fixtures = source_dir() + "/tests/segment/fixtures/";
  const nlohmann::json fixture = io::read_json_file(fixtures + sam->name + ".json");
  const nlohmann::json& c = fixture["cases"]["grid12"];
  const std::string dir = make_temp_dir("samdistill-segment");
  fs::create_directories(dir + "/images/sub");
  fs::copy_file(fixtures + fixture["image"].get<std::string>(), dir + "/images/a.png");
  fs::copy_file(fixtures + fixture["image"].get<std::string>(), dir + "/images/sub/b.png");
  std::string params;
  for (const auto& [key, value] : c["params"].items()) {
    std::string flag = key;
    std::replace(flag.begin(), flag.end(), '_', '-');
    params += " --" + flag + " " + value.dump();
  }
  const std::string common =
      "--threads 2 segment --student " + sam->file("weights.pth") + " --data " + dir + "/images";
  ProgramRun run = run_program(common + " --everything --out " + dir +
                               "/out --format rle,png --overlay" + params);
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_PRED2(contains, run.output, "2 segmented, 0 done before");

  // The reference's masks, in amg.py --convert-to-rle's records.
  const nlohmann::json a = io::read_json_file(dir + "/out/a.json");
  ASSERT_EQ(a.size(), c["masks"].size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["segmentation"]["counts"], c["masks"][i]["counts"]) << i;
    EXPECT_EQ(a[i]["bbox"], c["masks"][i]["bbox"]) << i;
    for (const char* key : {"area", "predicted_iou", "point_coords", "stability_score", "crop_box"})
      EXPECT_TRUE(a[i].contains(key)) << key;
  }
  EXPECT_EQ(io::read_json_file(dir + "/out/sub/b.json"), a);
  // amg.py's folder: a PNG per mask and metadata.csv with a header.
  EXPECT_EQ(lines_of(dir + "/out/a/metadata.csv"), a.size() + 1);
  EXPECT_EQ(read_file(dir + "/out/a/0.png").substr(1, 3), "PNG");
  EXPECT_TRUE(fs::exists(dir + "/out/a/" + std::to_string(a.size() - 1) + ".png"));
  EXPECT_EQ(read_file(dir + "/out/sub/b.overlay.png").substr(1, 3), "PNG");
  const nlohmann::json results = io::read_json_file(dir + "/out/coco_results.json");
  ASSERT_EQ(results.size(), 2 * a.size());
  EXPECT_EQ(results[0]["image_id"], "a");
  EXPECT_EQ(results.back()["image_id"], "sub/b");
  EXPECT_EQ(results[0]["segmentation"], a[0]["segmentation"]);
  EXPECT_EQ(results[0]["score"], a[0]["predicted_iou"]);

  // A rerun skips what is done; a missing file is made again.
  ProgramRun again = run_program(common + " --everything --out " + dir +
                                 "/out --format rle,png --overlay" + params);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_PRED2(contains, again.output, "0 segmented, 2 done before");
  fs::remove(dir + "/out/sub/b.overlay.png");
  again = run_program(common + " --everything --out " + dir + "/out --format rle,png --overlay" +
                      params);
  EXPECT_PRED2(contains, again.output, "1 segmented, 1 done before");
  EXPECT_TRUE(fs::exists(dir + "/out/sub/b.overlay.png"));

  // Box prompts from a detector's results, by file name; an image without any gets none.
  write_file_atomic(dir + "/boxes.json", R"([
      {"file_name": "a.png", "bbox": [10, 10, 40, 30], "score": 0.7, "category_id": 5},
      {"file_name": "a.png", "bbox": [0, 0, 20, 20], "score": 0.6},
      {"file_name": "a.png", "point_coords": [[30, 30]]}])");
  ProgramRun boxes = run_program(common + " --prompts " + dir + "/boxes.json --out " + dir +
                                 "/boxes --points-per-batch 1");
  ASSERT_EQ(boxes.status, 0) << boxes.output;
  const nlohmann::json b = io::read_json_file(dir + "/boxes/a.json");
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0]["category_id"], 5);
  EXPECT_EQ(b[1]["category_id"], 1);
  EXPECT_EQ(b[0]["bbox_prompt"], (std::vector<double>{10, 10, 40, 30}));
  EXPECT_EQ(b[2]["point_coords"], (std::vector<std::vector<double>>{{30, 30}}));
  EXPECT_EQ(io::read_json_file(dir + "/boxes/sub/b.json").size(), 0u);
  const nlohmann::json box_results = io::read_json_file(dir + "/boxes/coco_results.json");
  ASSERT_EQ(box_results.size(), 3u);
  EXPECT_EQ(box_results[0]["score"], 0.7);
  EXPECT_EQ(box_results[2]["score"], b[2]["predicted_iou"]);
  // The same prompts batched together give the same masks.
  ProgramRun batched =
      run_program(common + " --prompts " + dir + "/boxes.json --out " + dir + "/batched");
  ASSERT_EQ(batched.status, 0) << batched.output;
  const nlohmann::json bb = io::read_json_file(dir + "/batched/a.json");
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(bb[i]["segmentation"], b[i]["segmentation"]) << i;

  ProgramRun both =
      run_program(common + " --everything --prompts " + dir + "/boxes.json --out " + dir + "/x");
  EXPECT_NE(both.status, 0);
  EXPECT_PRED2(contains, both.output, "give exactly one of --everything and --prompts FILE");
  ProgramRun format = run_program(common + " --everything --format jpg --out " + dir + "/x");
  EXPECT_PRED2(contains, format.output, "--format 'jpg': 'jpg' is not png or rle");
  ProgramRun key = run_program(common + " --everything --box-nms-thresh 2 --out " + dir + "/x");
  EXPECT_NE(key.status, 0);
  EXPECT_PRED2(contains, key.output, "box_nms_thresh");
  EXPECT_FALSE(fs::exists(dir + "/x/a.json"));
  fs::remove_all(dir);
}

// bench's segment figures, on the fixture weights and a small image.
TEST(SegmentCli, BenchFigures) {
  SD_REQUIRE_FIXTURES();
  auto sam = first_folder(true);
  ASSERT_TRUE(sam);
  ProgramRun run = run_program("--threads 2 bench --json --only segment --segment-student " +
                               sam->file("weights.pth") + " --segment-image " + source_dir() +
                               "/tests/segment/fixtures/" + sam->name + ".png");
  ASSERT_EQ(run.status, 0) << run.output;
  const nlohmann::json f = nlohmann::json::parse(run.output.substr(run.output.find("{\n")));
  for (const char* key : {"amg_image_s", "amg_image_bf16_s", "segment_boxes_per_s"})
    EXPECT_GT(f.at(key).get<double>(), 0) << key;
  EXPECT_EQ(f.at("amg_image"), (std::vector<int>{64, 96}));
}

}  // namespace
}  // namespace sd::testing
