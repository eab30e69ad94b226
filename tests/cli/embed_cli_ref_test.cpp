// `samdistill embed` with the reference ViT teacher, run as a user runs it.
#include <ATen/ATen.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "data/image.h"
#include "store/reader.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;

namespace {

using sd::testing::contains;
using sd::testing::run_program;

nlohmann::json summary(const sd::testing::ProgramRun& run) {
  return nlohmann::json::parse(run.output.substr(run.output.find("{\n")));
}

// A minimal valid sa_N.json for `image`: its size, no annotations (embed checks the record).
std::string minimal_json(const std::string& image) {
  const at::Tensor rgb = sd::data::default_image_decoder()(sd::read_file(image), image);
  return nlohmann::json{{"image", {{"width", rgb.size(1)}, {"height", rgb.size(0)}}},
                        {"annotations", nlohmann::json::array()}}
      .dump();
}

// A new temporary folder `dir` whose `data` folder holds the teacher fixture's image as sa_1
// with its record, and the embed arguments naming that teacher and data folder.
struct EmbedSetup {
  std::string dir, data, args;
};
EmbedSetup embed_setup(const sd::testing::ModelFolder& teacher, const std::string& prefix) {
  EmbedSetup s;
  s.dir = sd::testing::make_temp_dir(prefix);
  s.data = s.dir + "/data";
  fs::create_directories(s.data);
  fs::copy_file(teacher.file("image.jpg"), s.data + "/sa_1.jpg");
  sd::write_file_atomic(s.data + "/sa_1.json", minimal_json(teacher.file("image.jpg")));
  s.args = "--threads 2 embed --teacher " + teacher.file("config.json") + " --teacher-checkpoint " +
           teacher.file("weights.pth") + " --data " + s.data;
  return s;
}

// sa_1 (the fixture's image), sa_2 (a sample image), sa_3 (a truncated JPEG); embedded in two
// shards into one folder, and in one run: the same embeddings; the bad image skipped with its
// reason; a second run has nothing left to do.
TEST(EmbedCli, ShardsResumeAndSkips) {
  SD_REQUIRE_FIXTURES();
  if (!sd::data::image_decoding_available())
    GTEST_SKIP() << "built without OpenCV: no image decoder";
  auto folder = sd::testing::first_folder(/*tiny_vit=*/false);
  ASSERT_TRUE(folder);
  const auto [dir, data, args] = embed_setup(*folder, "sd-cli-embed");
  fs::copy_file(sd::testing::data_sample() + "/sa_100003.jpg", data + "/sa_2.jpg");
  std::string jpg = sd::read_file(sd::testing::data_sample() + "/sa_100004.jpg");
  sd::write_file_atomic(data + "/sa_3.jpg", jpg.substr(0, jpg.size() / 2));
  sd::write_file_atomic(data + "/sa_2.json", minimal_json(data + "/sa_2.jpg"));
  sd::write_file_atomic(data + "/sa_3.json",
                        minimal_json(sd::testing::data_sample() + "/sa_100004.jpg"));
  const std::string common = args + " --json";

  for (const char* shard : {"0/2", "1/2"}) {
    auto run = run_program(common + " --store " + dir + "/sharded --shard " + shard);
    ASSERT_EQ(run.status, 0) << run.output;
  }
  auto run = run_program(common + " --store " + dir + "/whole");
  ASSERT_EQ(run.status, 0) << run.output;
  nlohmann::json s = summary(run);
  EXPECT_EQ(s["selected"], 3);
  EXPECT_EQ(s["embedded"], 2);
  EXPECT_EQ(s["skipped"], nlohmann::json::array({{{"file", data + "/sa_3.jpg"},
                                                  {"reason",
                                                   "truncated JPEG (no end-of-image marker before "
                                                   "the data ends)"}}}));

  sd::store::Reader sharded(dir + "/sharded"), whole(dir + "/whole");
  EXPECT_EQ(sharded.parts(), (std::vector<std::string>{"shard-0-of-2", "shard-1-of-2"}));
  for (const char* id : {"sa_1", "sa_2"})
    EXPECT_TRUE(at::equal(sharded.embedding(id), whole.embedding(id))) << id;

  run = run_program(common + " --store " + dir + "/whole");
  ASSERT_EQ(run.status, 0) << run.output;
  s = summary(run);
  EXPECT_EQ(s["already_done"], 2);
  EXPECT_EQ(s["embedded"], 0);

  run = run_program(common + " --store " + dir + "/whole --dtype bf16");
  EXPECT_NE(run.status, 0);
  EXPECT_PRED2(contains, run.output, "dtype is fp16 in the store, expected bf16");
  fs::remove_all(dir);
}

// embed reads each image's record as data stats does: a broken JSON, a bad RLE or a bad image
// is skipped by both, with the same file and reason, so the same images count as good
// everywhere; the summary names each file once; --strict stops at the first, naming it.
TEST(EmbedCli, SkipsTheRecordsDataStatsSkips) {
  SD_REQUIRE_FIXTURES();
  if (!sd::data::image_decoding_available())
    GTEST_SKIP() << "built without OpenCV: no image decoder";
  auto folder = sd::testing::first_folder(/*tiny_vit=*/false);
  ASSERT_TRUE(folder);
  const std::string dir = sd::testing::make_temp_dir("sd-cli-embed-bad"), data = dir + "/data";
  fs::create_directories(data);
  const std::string sample = sd::testing::data_sample() + "/sa_100003";
  fs::copy_file(folder->file("image.jpg"), data + "/sa_1.jpg");  // the one good record
  sd::write_file_atomic(data + "/sa_1.json", minimal_json(data + "/sa_1.jpg"));
  fs::copy_file(sample + ".jpg", data + "/sa_2.jpg");  // a good image, its JSON cut short
  sd::write_file_atomic(data + "/sa_2.json", sd::read_file(sample + ".json").substr(0, 100));
  fs::copy_file(sample + ".jpg", data + "/sa_3.jpg");  // a good image, a bad RLE
  nlohmann::json record = nlohmann::json::parse(sd::read_file(sample + ".json"));
  record["annotations"][2]["segmentation"]["counts"] = {100, 200};
  sd::write_file_atomic(data + "/sa_3.json", record.dump());
  const std::string jpg = sd::read_file(sample + ".jpg");  // a truncated image, a good JSON
  sd::write_file_atomic(data + "/sa_4.jpg", jpg.substr(0, jpg.size() / 2));
  fs::copy_file(sample + ".json", data + "/sa_4.json");

  auto stats = run_program("data stats --json --data " + data);
  ASSERT_EQ(stats.status, 0) << stats.output;
  const nlohmann::json counted = summary(stats);
  EXPECT_EQ(counted["images"], 1);
  ASSERT_EQ(counted["skipped"].size(), 3u);
  EXPECT_EQ(counted["skipped"][0]["file"], data + "/sa_2.json");
  EXPECT_EQ(counted["skipped"][1]["file"], data + "/sa_3.json");
  EXPECT_EQ(counted["skipped"][1]["reason"],
            "annotations[2]: RLE counts add up to 300, not height x width = 427200");
  EXPECT_EQ(counted["skipped"][2]["file"], data + "/sa_4.jpg");

  const std::string embed = "--threads 2 embed --teacher " + folder->file("config.json") +
                            " --teacher-checkpoint " + folder->file("weights.pth") + " --data " +
                            data;
  auto run = run_program(embed + " --json --store " + dir + "/json");
  ASSERT_EQ(run.status, 0) << run.output;
  const nlohmann::json s = summary(run);
  EXPECT_EQ(s["selected"], 4);
  EXPECT_EQ(s["embedded"], counted["images"]);
  EXPECT_EQ(s["skipped"], counted["skipped"]);

  std::string lines;  // "<file>: <reason>", each file once
  for (const auto& skip : counted["skipped"])
    lines +=
        "  " + skip["file"].get<std::string>() + ": " + skip["reason"].get<std::string>() + "\n";
  run = run_program(embed + " --store " + dir + "/text");
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_PRED2(contains, run.output, "embedded      1\nskipped       3\n" + lines);

  run = run_program(embed + " --strict --store " + dir + "/strict");
  EXPECT_NE(run.status, 0);
  EXPECT_EQ(sd::testing::logged(run.output, "error"),
            std::vector<std::string>{counted["skipped"][0]["file"].get<std::string>() + ": " +
                                     counted["skipped"][0]["reason"].get<std::string>()});
  fs::remove_all(dir);
}

// --amp bf16: the teacher runs under CPU autocast; its embeddings (stored in fp32 here) stay
// close to fp32's, relative L2 below 2% (printed), and are not fp32's to the bit.
TEST(EmbedCli, Bf16TeacherEmbeddingsAreCloseToFp32s) {
  SD_REQUIRE_FIXTURES();
  if (!sd::data::image_decoding_available())
    GTEST_SKIP() << "built without OpenCV: no image decoder";
  auto folder = sd::testing::first_folder(/*tiny_vit=*/false);
  ASSERT_TRUE(folder);
  const auto [dir, data, args] = embed_setup(*folder, "sd-cli-embed-bf16");
  const std::string common = args + " --dtype fp32";
  for (const char* amp : {"off", "bf16"}) {
    auto run = run_program(common + " --amp " + amp + " --store " + dir + "/" + amp);
    ASSERT_EQ(run.status, 0) << run.output;
  }
  const at::Tensor fp32 = sd::store::Reader(dir + "/off").embedding("sa_1");
  const at::Tensor bf16 = sd::store::Reader(dir + "/bf16").embedding("sa_1");
  const double rel = ((bf16 - fp32).norm() / fp32.norm()).item<double>();
  std::cout << "bf16 vs fp32 teacher embedding: relative L2 " << rel << "\n";
  EXPECT_LT(rel, 0.02);
  EXPECT_GT(rel, 0.0);
  fs::remove_all(dir);
}

}  // namespace
