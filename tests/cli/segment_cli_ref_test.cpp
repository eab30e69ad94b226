// `samdistill segment` as a user runs it, with the fixture SAM on the small images of
// tests/segment/fixtures: SAM's output files, the Python reference's masks, resuming, box
// prompts, and errors that name the flag.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/fixtures.h"
#include "common/pipeline.h"
#include "common/reference_masks.h"
#include "data/image.h"
#include "data/rle.h"
#include "data/tar.h"
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

// The Python reference's automatic masks of the first TinyViT fixture folder on its small
// image (tests/segment/fixtures, case grid12: 12 x 12 points, lowered thresholds).
struct Grid12 {
  std::string weights, image;  // the fixture folder's weights.pth, the image the case ran on
  nlohmann::json masks;        // the reference's records: counts, bbox, ...
  std::string flags;           // the case's parameters as segment's flags
};

std::optional<Grid12> grid12() {
  auto sam = first_folder(true);
  if (!sam) return std::nullopt;
  const std::string fixtures = source_dir() + "/tests/segment/fixtures/";
  const nlohmann::json fixture = io::read_json_file(fixtures + sam->name + ".json");
  const nlohmann::json& c = fixture["cases"]["grid12"];
  Grid12 g{sam->file("weights.pth"), fixtures + fixture["image"].get<std::string>(), c["masks"],
           ""};
  for (const auto& [key, value] : c["params"].items()) {
    std::string flag = key;
    std::replace(flag.begin(), flag.end(), '_', '-');
    g.flags += " --" + flag + " " + value.dump();
  }
  return g;
}

at::Tensor decoded(const std::string& path) {
  return data::default_image_decoder()(read_file(path), path);
}

// What segment wrote under OUT for the image `id` with every format and --overlay: the records
// in <id>.json have the masks `counts` (COCO RLE strings, in order); amg.py's folder <id>/ holds
// each of them as a PNG and metadata.csv a row each; <id>.overlay.png is the image (`image`)
// with colour where there are masks.
void expect_image_outputs(const std::string& out, const std::string& id,
                          const std::vector<std::string>& counts, const at::Tensor& image) {
  SCOPED_TRACE(id);
  const nlohmann::json records = io::read_json_file(out + "/" + id + ".json");
  ASSERT_EQ(records.size(), counts.size());
  EXPECT_EQ(lines_of(out + "/" + id + "/metadata.csv"), counts.size() + 1);
  const int height = int(image.size(0)), width = int(image.size(1));
  for (size_t i = 0; i < counts.size(); ++i) {
    EXPECT_EQ(records[i]["segmentation"]["counts"], counts[i]) << i;
    const at::Tensor mask = data::rle_decode(data::rle_from_string(counts[i], height, width, id));
    const at::Tensor png = decoded(out + "/" + id + "/" + std::to_string(i) + ".png");
    EXPECT_TRUE(at::equal(png.select(2, 0).gt(0), mask.gt(0))) << i;
  }
  EXPECT_FALSE(fs::exists(out + "/" + id + "/" + std::to_string(counts.size()) + ".png"));
  const at::Tensor overlay = decoded(out + "/" + id + ".overlay.png");
  ASSERT_EQ(overlay.sizes(), image.sizes());
  EXPECT_EQ(at::equal(overlay, image), counts.empty());
}

// The COCO mask strings of the records of a segment output file.
std::vector<std::string> counts_of(const nlohmann::json& records) {
  std::vector<std::string> out;
  for (const nlohmann::json& r : records) out.push_back(r["segmentation"]["counts"]);
  return out;
}

// Everything-mode's records of one image (`path`) against the reference's masks
// (common/reference_masks.h).
std::vector<MaskMatch> match_grid12(const nlohmann::json& records, const Grid12& g,
                                    const std::string& path) {
  std::vector<data::Rle> rles;
  for (const nlohmann::json& r : records) {
    const nlohmann::json& s = r["segmentation"];
    rles.push_back(
        data::rle_from_string(s["counts"].get<std::string>(), s["size"][0], s["size"][1], path));
  }
  return match_reference_masks(g.masks, rles, path);
}

// SA-1B's pair for an image of 96 x 64 pixels: sa_<id>.jpg (`image`'s bytes: images are known
// by their first bytes) and sa_<id>.json without annotations.
void write_sa1b_pair(const std::string& dir, int id, const std::string& image) {
  fs::create_directories(dir);
  const std::string stem = dir + "/sa_" + std::to_string(id);
  fs::copy_file(image, stem + ".jpg");
  write_file_atomic(stem + ".json",
                    nlohmann::json{{"image",
                                    {{"image_id", id},
                                     {"width", 96},
                                     {"height", 64},
                                     {"file_name", "sa_" + std::to_string(id) + ".jpg"}}},
                                   {"annotations", nlohmann::json::array()}}
                        .dump());
}

// Sources of every other kind in one --data: a COCO file over --images (a, b), an SA-1B folder
// (sa_21) and an SA-1B tar (sa_31), all holding the fixture image. Everything-mode gives each
// the reference's masks, and detections reach their image by image_id (COCO's and SA-1B's) and
// by file_name; every format is written for both.
TEST(SegmentCli, CocoAndSa1bSourcesInBothModesAndEveryFormat) {
  SD_REQUIRE_FIXTURES();
  if (!data::tar_reading_available()) GTEST_SKIP() << "built without libarchive: no tars";
  const std::optional<Grid12> g = grid12();
  ASSERT_TRUE(g);
  const std::string dir = make_temp_dir("samdistill-segment-sources");
  fs::create_directories(dir + "/coco/images");
  fs::copy_file(g->image, dir + "/coco/images/a.png");
  fs::copy_file(g->image, dir + "/coco/images/b.png");
  write_file_atomic(dir + "/coco/instances.json", R"({"images": [
      {"id": 11, "file_name": "a.png", "width": 96, "height": 64},
      {"id": 12, "file_name": "b.png", "width": 96, "height": 64}], "annotations": []})");
  write_sa1b_pair(dir + "/sa1b", 21, g->image);
  write_sa1b_pair(dir + "/tar", 31, g->image);
  ASSERT_EQ(
      std::system(
          ("tar -cf " + dir + "/sa_000001.tar -C " + dir + "/tar sa_31.jpg sa_31.json").c_str()),
      0);
  const std::string common = "--threads 2 segment --student " + g->weights + " --data " + dir +
                             "/coco/instances.json," + dir + "/sa1b," + dir +
                             "/sa_000001.tar --images " + dir +
                             "/coco/images --format rle,png "
                             "--overlay";
  const at::Tensor image = decoded(g->image);
  const std::vector<std::string> ids{"a", "b", "sa_21", "sa_31"};

  ProgramRun run = run_program(common + " --everything --out " + dir + "/all" + g->flags);
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_PRED2(contains, run.output, "4 segmented, 0 done before");
  // The reference's masks on the first image, and the same on every other.
  const nlohmann::json first = io::read_json_file(dir + "/all/a.json");
  EXPECT_EQ(match_grid12(first, *g, dir + "/all/a.json").size(), g->masks.size());
  const std::vector<std::string> reference = counts_of(first);
  for (const std::string& id : ids) expect_image_outputs(dir + "/all", id, reference, image);
  // COCO results: a COCO file's images by its ids, the others by their own.
  std::map<std::string, size_t> per_image;
  for (const nlohmann::json& r : io::read_json_file(dir + "/all/coco_results.json"))
    ++per_image[r["image_id"].dump()];
  const size_t n = reference.size();
  EXPECT_EQ(per_image, (std::map<std::string, size_t>{
                           {"11", n}, {"12", n}, {"\"sa_21\"", n}, {"\"sa_31\"", n}}));

  write_file_atomic(dir + "/detections.json", R"([
      {"image_id": 11, "bbox": [10, 10, 40, 30], "score": 0.9, "category_id": 3},
      {"image_id": 21, "bbox": [10, 10, 40, 30], "score": 0.8},
      {"file_name": "b.png", "bbox": [10, 10, 40, 30], "score": 0.7},
      {"file_name": "sa_31.jpg", "bbox": [10, 10, 40, 30], "score": 0.6},
      {"image_id": 31, "bbox": [0, 0, 20, 20], "score": 0.5},
      {"image_id": 99, "bbox": [0, 0, 20, 20], "score": 0.4}])");
  run = run_program(common + " --prompts " + dir + "/detections.json --out " + dir + "/boxes/");
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_PRED2(contains, run.output, "4 segmented, 0 done before");
  EXPECT_PRED2(contains, run.output, "COCO results  " + dir + "/boxes/coco_results.json\n");
  const nlohmann::json a = io::read_json_file(dir + "/boxes/a.json");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0]["category_id"], 3);
  EXPECT_EQ(a[0]["bbox_prompt"], (std::vector<double>{10, 10, 40, 30}));
  const std::string box = a[0]["segmentation"]["counts"];
  // The same box on the same picture: the same mask, whichever way it was matched.
  expect_image_outputs(dir + "/boxes", "a", {box}, image);
  expect_image_outputs(dir + "/boxes", "b", {box}, image);
  expect_image_outputs(dir + "/boxes", "sa_21", {box}, image);
  const nlohmann::json tar = io::read_json_file(dir + "/boxes/sa_31.json");
  ASSERT_EQ(tar.size(), 2u);  // by image_id, then by file_name
  EXPECT_EQ(tar[0]["bbox_prompt"], (std::vector<double>{0, 0, 20, 20}));
  expect_image_outputs(dir + "/boxes", "sa_31", counts_of(tar), image);
  EXPECT_EQ(tar[1]["segmentation"]["counts"], box);
  std::map<std::string, std::vector<double>> scores;  // per image, in record order
  for (const nlohmann::json& r : io::read_json_file(dir + "/boxes/coco_results.json"))
    scores[r["image_id"].dump()].push_back(r["score"]);
  EXPECT_EQ(scores,
            (std::map<std::string, std::vector<double>>{
                {"11", {0.9}}, {"12", {0.7}}, {"\"sa_21\"", {0.8}}, {"\"sa_31\"", {0.5, 0.6}}}));
  fs::remove_all(dir);
}

// SIGINT stops segment after the image it is on, with every finished image's files and the
// COCO results written; the same command again segments only the rest.
TEST(SegmentCli, SigintStopsAfterTheImageAndARerunContinues) {
  SD_REQUIRE_FIXTURES();
  const std::optional<Grid12> g = grid12();
  ASSERT_TRUE(g);
  const std::string dir = make_temp_dir("samdistill-segment-stop");
  fs::create_directories(dir + "/images");
  const int images = 4;
  for (int i = 0; i < images; ++i)
    fs::copy_file(g->image, dir + "/images/" + std::to_string(i) + ".png");
  const std::string out = dir + "/out";
  const std::string args = "--threads 2 segment --everything --student " + g->weights + " --data " +
                           dir + "/images --out " + out + g->flags;
  auto written = [&] {
    size_t n = 0;
    for (int i = 0; i < images; ++i) n += fs::exists(out + "/" + std::to_string(i) + ".json");
    return n;
  };
  const SignalledRun stopped =
      signal_when(args, dir + "/run.log", [&] { return written() >= 1; }, {SIGINT});
  ASSERT_TRUE(stopped.sent) << "segment ended before the signal: " << stopped.output;
  EXPECT_EQ(stopped.status, 128 + SIGINT) << stopped.output;
  const size_t done = written();
  ASSERT_GE(done, 1u);
  ASSERT_LT(done, size_t(images)) << stopped.output;
  EXPECT_PRED2(contains, stopped.output,
               "segment: stopped by SIGINT after " + std::to_string(done) +
                   " images, their files written in " + out);
  EXPECT_EQ(io::read_json_file(out + "/coco_results.json").size(), done * g->masks.size());

  const ProgramRun rerun = run_program(args);
  ASSERT_EQ(rerun.status, 0) << rerun.output;
  EXPECT_PRED2(
      contains, rerun.output,
      std::to_string(images - done) + " segmented, " + std::to_string(done) + " done before");
  EXPECT_EQ(written(), size_t(images));
  fs::remove_all(dir);
}

TEST(SegmentCli, EverythingFormatsResumeAndPrompts) {
  SD_REQUIRE_FIXTURES();
  const std::optional<Grid12> g = grid12();
  ASSERT_TRUE(g);
  const std::string dir = make_temp_dir("samdistill-segment");
  fs::create_directories(dir + "/images/sub");
  fs::copy_file(g->image, dir + "/images/a.png");
  fs::copy_file(g->image, dir + "/images/sub/b.png");
  const std::string params = g->flags;
  const std::string common =
      "--threads 2 segment --student " + g->weights + " --data " + dir + "/images";
  ProgramRun run = run_program(common + " --everything --out " + dir +
                               "/out --format rle,png --overlay" + params);
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_PRED2(contains, run.output, "2 segmented, 0 done before");

  // The reference's masks, in amg.py --convert-to-rle's records.
  const nlohmann::json a = io::read_json_file(dir + "/out/a.json");
  const std::vector<MaskMatch> matches = match_grid12(a, *g, dir + "/out/a.json");
  ASSERT_EQ(matches.size(), g->masks.size());
  for (size_t i = 0; i < matches.size(); ++i) {
    if (matches[i].identical) {
      EXPECT_EQ(a[matches[i].ours]["bbox"], g->masks[i]["bbox"]) << i;
    }
  }
  for (size_t i = 0; i < a.size(); ++i) {
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

// bench's segment figures, on the fixture weights, a small image and a small grid (the
// tracked figure's 32 x 32 takes minutes here).
TEST(SegmentCli, BenchFigures) {
  SD_REQUIRE_FIXTURES();
  auto sam = first_folder(true);
  ASSERT_TRUE(sam);
  ProgramRun run =
      run_program("--threads 2 bench --json --only segment --segment-student " +
                  sam->file("weights.pth") + " --segment-image " + source_dir() +
                  "/tests/segment/fixtures/" + sam->name + ".png --amg-points-per-side 4");
  ASSERT_EQ(run.status, 0) << run.output;
  const nlohmann::json f = nlohmann::json::parse(run.output.substr(run.output.find("{\n")));
  for (const char* key : {"amg_image_s", "amg_image_bf16_s", "segment_boxes_per_s"})
    EXPECT_GT(f.at(key).get<double>(), 0) << key;
  EXPECT_EQ(f.at("amg_image"), (std::vector<int>{64, 96}));
  EXPECT_EQ(f.at("amg_points_per_side"), 4);
  ProgramRun none = run_program("bench --only segment --amg-points-per-side 0");
  EXPECT_NE(none.status, 0);
  EXPECT_PRED2(contains, none.output, "--amg-points-per-side");
}

}  // namespace
}  // namespace sd::testing
