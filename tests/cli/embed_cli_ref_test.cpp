// `samdistill embed` with the reference ViT teacher, run as a user runs it.
#include <ATen/ATen.h>

#include <filesystem>
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

// sa_1 (the fixture's image), sa_2 (a sample image), sa_3 (a truncated JPEG); embedded in two
// shards into one folder, and in one run: the same embeddings; the bad image skipped with its
// reason; a second run has nothing left to do.
TEST(EmbedCli, ShardsResumeAndSkips) {
  SD_REQUIRE_FIXTURES();
  if (!sd::data::image_decoding_available())
    GTEST_SKIP() << "built without OpenCV: no image decoder";
  auto folder = sd::testing::first_folder(/*tiny_vit=*/false);
  ASSERT_TRUE(folder);
  std::string dir = sd::testing::make_temp_dir("sd-cli-embed"), data = dir + "/data";
  fs::create_directories(data);
  fs::copy_file(folder->file("image.jpg"), data + "/sa_1.jpg");
  fs::copy_file(sd::testing::data_sample() + "/sa_100003.jpg", data + "/sa_2.jpg");
  std::string jpg = sd::read_file(sd::testing::data_sample() + "/sa_100004.jpg");
  sd::write_file_atomic(data + "/sa_3.jpg", jpg.substr(0, jpg.size() / 2));
  for (const char* id : {"sa_1", "sa_2", "sa_3"})
    sd::write_file_atomic(data + "/" + id + ".json", "{}");
  std::string common = "--threads 2 embed --json --teacher " + folder->file("config.json") +
                       " --teacher-checkpoint " + folder->file("weights.pth") + " --data " + data;

  for (const char* shard : {"0/2", "1/2"}) {
    auto run = run_program(common + " --store " + dir + "/sharded --shard " + shard);
    ASSERT_EQ(run.status, 0) << run.output;
  }
  auto run = run_program(common + " --store " + dir + "/whole");
  ASSERT_EQ(run.status, 0) << run.output;
  nlohmann::json s = summary(run);
  EXPECT_EQ(s["selected"], 3);
  EXPECT_EQ(s["embedded"], 2);
  ASSERT_EQ(s["skipped"].size(), 1u);
  EXPECT_PRED2(contains, s["skipped"][0]["file"].get<std::string>(), "sa_3.jpg");
  EXPECT_PRED2(contains, s["skipped"][0]["reason"].get<std::string>(), "truncated");

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

}  // namespace
