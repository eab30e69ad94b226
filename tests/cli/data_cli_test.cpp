// `samdistill data stats`, run as a user runs it.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
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

TEST(DataCli, BadRecordSkippedOrStrictFailure) {
  const std::string dir = sd::testing::make_temp_dir("sd-cli-data");
  const std::string src = sd::testing::data_sample() + "/sa_100003";
  for (const char* stem : {"sa_1", "sa_2"}) {
    std::filesystem::copy_file(src + ".jpg", dir + "/" + stem + ".jpg");
    std::filesystem::copy_file(src + ".json", dir + "/" + stem + ".json");
  }
  const std::string jpg = sd::read_file(src + ".jpg");
  sd::write_file_atomic(dir + "/sa_2.jpg", jpg.substr(0, jpg.size() / 3));

  auto run = run_program("data stats --data " + dir);
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_PRED2(contains, run.output, "images       1");
  EXPECT_PRED2(contains, run.output, "sa_2.jpg: truncated JPEG");

  run = run_program("data stats --strict --data " + dir);
  EXPECT_NE(run.status, 0) << run.output;
  EXPECT_PRED2(contains, run.output, "sa_2.jpg: truncated JPEG");
  std::filesystem::remove_all(dir);
}

}  // namespace
