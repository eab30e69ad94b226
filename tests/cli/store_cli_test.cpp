// `samdistill store verify|get|stats|merge`, run as a user runs it.
#include <ATen/ATen.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "io/checkpoint.h"
#include "store/part.h"
#include "store/writer.h"
#include "util/atomic_file.h"

namespace {

using sd::testing::contains;
using sd::testing::run_program;

class StoreCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = sd::testing::make_temp_dir("sd-cli-store");
    store_ = dir_ + "/store";
    sd::store::Manifest manifest;
    manifest.teacher = {{"embed_dim", 96}};
    manifest.dtype = sd::store::DType::fp16;
    sd::store::Writer writer(store_, manifest, "part");
    for (int i = 0; i < 3; ++i) {
      values_.push_back(at::randn({256, 64, 64}));
      writer.put(sd::store::encode_embedding("sa_" + std::to_string(i), values_.back(),
                                             sd::store::DType::fp16));
    }
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_, store_;
  std::vector<at::Tensor> values_;
};

TEST_F(StoreCli, GetWritesAFloat32EmbeddingDict) {
  std::string out = dir_ + "/e.pth";
  auto run = run_program("store get --store " + store_ + " --key sa_1 --out " + out);
  ASSERT_EQ(run.status, 0) << run.output;
  auto dict = sd::io::read_torch_file(out).toGenericDict();
  ASSERT_EQ(dict.size(), 1u);
  at::Tensor e = dict.at("embedding").toTensor();
  EXPECT_EQ(e.sizes(), (std::vector<int64_t>{1, 256, 64, 64}));
  EXPECT_EQ(e.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(e[0], values_[1].to(at::kHalf).to(at::kFloat)));
  run = run_program("store get --store " + store_ + " --key sa_9 --out " + out);
  EXPECT_NE(run.status, 0);
  EXPECT_PRED2(contains, run.output, "no embedding for key 'sa_9'");
}

TEST_F(StoreCli, StatsAndVerify) {
  auto run = run_program("store stats --json --store " + store_);
  ASSERT_EQ(run.status, 0) << run.output;
  auto s = nlohmann::json::parse(run.output);
  EXPECT_EQ(s["embeddings"], 3);
  EXPECT_EQ(s["bytes_per_embedding"], 2 * 1024 * 1024 + 128);
  EXPECT_EQ(s["manifest"]["dtype"], "fp16");
  EXPECT_LT(s["relative_mse_vs_fp32"].get<double>(), 1e-6);
  run = run_program("store verify --store " + store_);
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_PRED2(contains, run.output, "3 records ok, 0 problems");

  std::string records = sd::store::records_path(store_, "part");
  std::string bytes = sd::read_file(records);
  bytes[bytes.size() / 2] ^= 1;  // in the payload of sa_1
  sd::write_file_atomic(records, bytes);
  run = run_program("store verify --store " + store_);
  EXPECT_NE(run.status, 0);
  EXPECT_PRED2(contains, run.output, "key 'sa_1'");
  EXPECT_PRED2(contains, run.output, "2 records ok, 1 problems");
}

// An edited manifest (dtype fp16 -> fp32) fails verify and is refused by stats, naming it.
TEST_F(StoreCli, VerifyChecksTheManifest) {
  const std::string path = store_ + "/manifest.json";
  nlohmann::json j = nlohmann::json::parse(sd::read_file(path));
  ASSERT_EQ(j["dtype"], "fp16");
  j["dtype"] = "fp32";
  sd::write_file_atomic(path, j.dump(2) + "\n");
  auto run = run_program("store verify --json --store " + store_);
  EXPECT_NE(run.status, 0);
  const size_t from = run.output.find("{\n");  // stdout's JSON, the log lines (stderr) apart
  const auto report =
      nlohmann::json::parse(run.output.substr(from, run.output.rfind('}') + 1 - from));
  EXPECT_EQ(report["records_ok"], 3);
  ASSERT_EQ(report["damage"].size(), 1u) << run.output;
  const std::string damage = report["damage"][0];
  EXPECT_EQ(damage.substr(0, damage.find(" (")), path + ": does not match its checksum");
  EXPECT_EQ(sd::testing::logged(run.output, "error"),
            std::vector<std::string>{"store '" + store_ + "' is damaged (1 problems)"});

  run = run_program("store stats --store " + store_);
  EXPECT_NE(run.status, 0);
  EXPECT_EQ(sd::testing::logged(run.output, "error"), std::vector<std::string>{damage});
}

TEST_F(StoreCli, MergeCopiesMissingRecords) {
  auto run =
      run_program("store merge --store " + dir_ + "/joined --from " + store_ + " --from " + store_);
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_PRED2(contains, run.output, "copied 3 records");
  EXPECT_PRED2(contains, run.output, "copied 0 records");
}

}  // namespace
