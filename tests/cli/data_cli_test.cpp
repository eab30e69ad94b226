// `samdistill data stats`, run as a user runs it.
#include <ATen/ATen.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "data/tar.h"
#include "store/writer.h"
#include "util/atomic_file.h"

namespace {

using sd::testing::contains;
using sd::testing::run_program;

// data/sample: 5 images, 339 annotations, 10838719 mask pixels (a Python script over the
// JSONs with its own RLE decoder; see tests/data/dataset_test.cpp).
TEST(DataCli, StatsJsonOfSample) {
  auto run = run_program("data stats --json --data " + sd::testing::data_sample());
  ASSERT_EQ(run.status, 0) << run.output;
  const auto j = nlohmann::json::parse(run.output.substr(run.output.find('{')));
  EXPECT_EQ(j["images"], 5);
  EXPECT_EQ(j["annotations"], 339);
  EXPECT_EQ(j["mask_pixels"], 10838719);
  EXPECT_TRUE(j["skipped"].empty());
}

// The progress line ends at the whole (a log gets whole lines, no terminal redraws).
TEST(DataCli, ProgressEndsAtTheWhole) {
  auto run = run_program("data stats --data " + sd::testing::data_sample());
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_PRED2(sd::testing::contains, run.output, "data stats 5/5 (100%)");
  EXPECT_FALSE(sd::testing::contains(run.output, "data stats 4/5")) << run.output;
}

TEST(DataCli, BadRecordSkippedOrStrictFailure) {
  const std::string dir = sd::testing::make_temp_dir("sd-cli-data");
  const std::string src = sd::testing::data_sample() + "/sa_100003";
  for (const char* stem : {"sa_1", "sa_2"}) {
    std::filesystem::copy_file(src + ".jpg", dir + "/" + stem + ".jpg");
    std::filesystem::copy_file(src + ".json", dir + "/" + stem + ".json");
  }
  const std::string jpg = sd::read_file(src + ".jpg");
  sd::write_file_atomic(dir + "/sa_2.jpg", jpg.substr(0, jpg.size() / 3));

  // One line per skipped record, naming the file once; the same words in the JSON and, with
  // --strict, in the error.
  const std::string why = "truncated JPEG (no end-of-image marker before the data ends)";
  auto run = run_program("data stats --json --data " + dir);
  EXPECT_EQ(run.status, 0) << run.output;
  const auto j = nlohmann::json::parse(run.output.substr(run.output.find("{\n")));
  EXPECT_EQ(j["images"], 1);
  EXPECT_EQ(j["skipped"], nlohmann::json::parse(R"([{"file": ")" + dir +
                                                R"(/sa_2.jpg", "reason": ")" + why + R"("}])"));

  run = run_program("data stats --data " + dir);
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_PRED2(contains, run.output,
               "images       1\nannotations  " + j["annotations"].dump() + "\nmask_pixels  " +
                   j["mask_pixels"].dump() + "\nskipped      1\n  " + dir + "/sa_2.jpg: " + why +
                   "\n");
  EXPECT_EQ(sd::testing::logged(run.output, "warning"),
            std::vector<std::string>{"skipping " + dir + "/sa_2.jpg: " + why});

  run = run_program("data stats --strict --data " + dir);
  EXPECT_NE(run.status, 0) << run.output;
  EXPECT_EQ(sd::testing::logged(run.output, "error"),
            std::vector<std::string>{dir + "/sa_2.jpg: " + why});
  std::filesystem::remove_all(dir);
}

// A 200x100 rectangle polygon covers 20000 pixels (pycocotools' rasterisation: columns
// 100..299, rows 100..199; see tests/data/rle_test.cpp for the rule traced by hand).
TEST(DataCli, StatsOfCocoFile) {
  const std::string dir = sd::testing::make_temp_dir("sd-cli-coco");
  std::filesystem::copy_file(sd::testing::data_sample() + "/sa_100003.jpg", dir + "/dog.jpg");
  sd::write_file_atomic(dir + "/instances.json",
                        R"({"images": [{"id": 1, "width": 800, "height": 534,
      "file_name": "dog.jpg"}], "annotations": [{"id": 1, "image_id": 1, "iscrowd": 0,
      "segmentation": [[100, 100, 300, 100, 300, 200, 100, 200]]}]})");
  auto run = run_program("data stats --json --coco " + dir + "/instances.json");
  ASSERT_EQ(run.status, 0) << run.output;
  const auto j = nlohmann::json::parse(run.output.substr(run.output.find('{')));
  EXPECT_EQ(j["images"], 1);
  EXPECT_EQ(j["mask_pixels"], 20000);
  std::filesystem::remove_all(dir);
}

// A COCO file whose images are elsewhere (--images forgotten): the folder searched is named
// and --images suggested, and nothing is a success.
TEST(DataCli, CocoImagesNotFoundNameTheFolderAndSuggestImages) {
  const std::string dir = sd::testing::make_temp_dir("sd-cli-coco");
  std::filesystem::create_directories(dir + "/annotations");
  std::filesystem::create_directories(dir + "/val2017");
  std::filesystem::copy_file(sd::testing::data_sample() + "/sa_100003.jpg",
                             dir + "/val2017/dog.jpg");
  sd::write_file_atomic(dir + "/annotations/instances.json",
                        R"({"images": [{"id": 1, "width": 800, "height": 534,
      "file_name": "dog.jpg"}], "annotations": []})");
  auto run = run_program("data stats --json --data " + dir + "/annotations/instances.json");
  EXPECT_EQ(run.status, 1) << run.output;
  EXPECT_PRED2(contains, run.output,
               "none of the 1 images listed in " + dir +
                   "/annotations/instances.json is in the folder '" + dir + "/annotations'");
  EXPECT_PRED2(contains, run.output, "give --images with the folder that holds them");
  run = run_program("data stats --json --data " + dir + "/annotations/instances.json --images " +
                    dir + "/val2017");
  EXPECT_EQ(run.status, 0) << run.output;
  std::filesystem::remove_all(dir);
}

// Sources of every kind in one --data: an SA-1B tar cut in the middle of its last member, a
// plain folder with a bad file, a COCO file over that folder; what is lost is named and
// counted, the rest read, and one image from two sources is refused naming both.
TEST(DataCli, StatsOfMixedSources) {
  if (!sd::data::tar_reading_available()) GTEST_SKIP() << "built without libarchive: no tars";
  const std::string dir = sd::testing::make_temp_dir("sd-cli-mixed");
  const std::string sample = sd::testing::data_sample();
  ASSERT_EQ(std::system(("tar -cf " + dir + "/whole.tar -C " + sample +
                         " sa_100001.jpg sa_100001.json sa_100002.jpg sa_100002.json")
                            .c_str()),
            0);
  // The last member (sa_100002.json, 79119 bytes) is followed by less than 11776 bytes of
  // padding and end blocks: 52000 bytes before the end is inside its data.
  const std::string tar = sd::read_file(dir + "/whole.tar");
  sd::write_file_atomic(dir + "/sa_000020.tar", tar.substr(0, tar.size() - 52000));
  std::filesystem::create_directories(dir + "/photos/cams");
  std::filesystem::copy_file(sample + "/sa_100003.jpg", dir + "/photos/cams/dog.JPEG");
  sd::write_file_atomic(dir + "/photos/notes.png", "not an image");

  auto run = run_program("data stats --json --data " + dir + "/sa_000020.tar," + dir + "/photos");
  ASSERT_EQ(run.status, 0) << run.output;
  const auto j = nlohmann::json::parse(run.output.substr(run.output.find("{\n")));
  EXPECT_EQ(j["images"], 2);  // sa_100001 and cams/dog
  ASSERT_EQ(j["skipped"].size(), 3u) << j.dump(2);
  EXPECT_EQ(j["skipped"][0]["file"], dir + "/sa_000020.tar");
  EXPECT_PRED2(contains, j["skipped"][0]["reason"].get<std::string>(),
               "cut short at byte " + std::to_string(tar.size() - 52000));
  EXPECT_EQ(j["skipped"][1]["file"], dir + "/sa_000020.tar:sa_100002.jpg");
  EXPECT_EQ(j["skipped"][1]["reason"], "image without its JSON");
  EXPECT_EQ(j["skipped"][2]["file"], dir + "/photos/notes.png");

  // A COCO file over the same folder names cams/dog again.
  sd::write_file_atomic(dir + "/coco.json",
                        R"({"images": [{"id": 1, "width": 800, "height": 534,
      "file_name": "cams/dog.JPEG"}], "annotations": []})");
  run = run_program("data stats --data " + dir + "/photos " + dir + "/coco.json --images " + dir +
                    "/photos");
  EXPECT_NE(run.status, 0) << run.output;
  EXPECT_PRED2(contains, run.output, "image id 'cams/dog' is given twice");
  std::filesystem::remove_all(dir);
}

// eval on images without masks: the mask kinds stop it before any model is read, saying which
// kinds work there.
TEST(DataCli, EvalRefusesMaskKindsOnPlainImages) {
  const std::string dir = sd::testing::make_temp_dir("sd-cli-plain-eval");
  std::filesystem::create_directories(dir + "/photos");
  std::filesystem::copy_file(sd::testing::data_sample() + "/sa_100003.jpg", dir + "/photos/a.jpg");
  auto run = run_program("eval --student " + dir + "/none.pth --data " + dir +
                         "/photos --prompts grid@4,center");
  EXPECT_NE(run.status, 0) << run.output;
  EXPECT_EQ(sd::testing::logged(run.output, "error"),
            std::vector<std::string>{
                "--prompts: 'center' needs annotation masks, and '" + dir +
                "/photos/a.jpg' (a plain image) has none; the kinds that work on images without "
                "masks are grid@N and random@K (scored against the teacher's mask)"});
  std::filesystem::remove_all(dir);
}

// finetune on a store of plain images: mask kinds, and teacher-less targets (gt), stop it
// before any model is read, naming the key.
TEST(DataCli, FinetuneRefusesWhatPlainImagesCannotGive) {
  const std::string dir = sd::testing::make_temp_dir("sd-cli-plain-finetune");
  std::filesystem::create_directories(dir + "/photos");
  sd::store::Manifest manifest;
  manifest.teacher = {{"embed_dim", 96}};
  manifest.dtype = sd::store::DType::fp16;
  sd::store::Writer writer(dir + "/store", manifest, "part");
  for (const std::string id : {"a", "b"}) {
    std::filesystem::copy_file(sd::testing::data_sample() + "/sa_100003.jpg",
                               dir + "/photos/" + id + ".jpg");
    writer.put(sd::store::encode_embedding(id, at::zeros({8, 4, 4}), sd::store::DType::fp16));
  }
  writer.commit();
  sd::write_file_atomic(dir + "/none.pth", "");  // refused later, after the images
  const std::string finetune = "finetune --student " + dir + "/none.pth --store " + dir +
                               "/store --data " + dir + "/photos --out " + dir + "/run";
  auto run = run_program(finetune + " --val-prompts grid@2");  // prompts: box,point,center
  EXPECT_NE(run.status, 0) << run.output;
  EXPECT_PRED2(contains, run.output,
               "prompts: 'box' needs annotation masks, and '" + dir +
                   "/photos/a.jpg' (a plain image) has none");
  run = run_program(finetune + " --prompts grid@4 --val-prompts grid@2 --target gt");
  EXPECT_NE(run.status, 0) << run.output;
  EXPECT_PRED2(contains, run.output,
               "prompts: 'grid@4' has no annotation mask to train on with target gt");
  std::filesystem::remove_all(dir);
}

}  // namespace
