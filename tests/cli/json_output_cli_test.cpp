// Every --json output parses as it comes: results on stdout, logs (warnings about skipped
// files, progress, bench's part names) on stderr, and names that are not UTF-8 escaped
// (issues 28 and 31).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/streams.h"
#include "data/image.h"
#include "io/train_checkpoint_file.h"
#include "store/part.h"
#include "store/writer.h"
#include "util/atomic_file.h"

namespace sd::testing {
namespace {

// The program's stdout and stderr apart.
Streams run_apart(const std::string& args) { return run_command_apart(binary_path() + " " + args); }

TEST(JsonOutput, DataStatsJsonParsesWithWarningsAndNamesThatAreNotUtf8) {
  const std::string dir = make_temp_dir("sd-json-out");
  std::filesystem::create_directories(dir + "/p");
  std::ofstream(dir + "/p/caf\xe9.png") << "not an image";
  std::ofstream(dir + "/p/two\nlines.jpg") << "not an image";
  const Streams run = run_apart("data stats --json --data '" + dir + "/p'");
  ASSERT_EQ(run.status, 0) << run.out << run.err;
  EXPECT_PRED2(contains, run.err, "skipping " + dir + "/p/caf\\xe9.png: not a JPEG");
  EXPECT_PRED2(contains, run.err, "skipping " + dir + "/p/two\\x0alines.jpg: not a JPEG");
  nlohmann::json j;
  ASSERT_NO_THROW(j = nlohmann::json::parse(run.out)) << run.out;
  ASSERT_EQ(j["skipped"].size(), 2u);
  EXPECT_EQ(j["skipped"][0]["file"], dir + "/p/caf\\xe9.png");
  std::filesystem::remove_all(dir);
}

TEST(JsonOutput, BenchJsonParsesWithItsLogs) {
  const Streams run = run_apart("--threads 2 bench --json --repeats 1 --only store");
  ASSERT_EQ(run.status, 0) << run.out << run.err;
  EXPECT_PRED2(contains, run.err, "bench: store");
  nlohmann::json parsed;
  ASSERT_NO_THROW(parsed = nlohmann::json::parse(run.out)) << run.out;
}

// store stats of a store whose manifest predates checksums (a warning), store verify of a
// damaged one (an error): their JSON on stdout, the logs on stderr.
TEST(JsonOutput, StoreStatsAndVerifyJsonParseWithTheirLogs) {
  const std::string dir = make_temp_dir("sd-json-out"), store = dir + "/store";
  {
    store::Manifest manifest;
    manifest.teacher = {{"embed_dim", 96}};
    manifest.dtype = store::DType::fp16;
    store::Writer writer(store, manifest, "part");
    for (int i = 0; i < 2; ++i)
      writer.put(store::encode_embedding("sa_" + std::to_string(i), at::randn({256, 64, 64}),
                                         store::DType::fp16));
  }
  nlohmann::json manifest = nlohmann::json::parse(read_file(store + "/manifest.json"));
  manifest.erase("sha256");
  write_file_atomic(store + "/manifest.json", manifest.dump(2) + "\n");
  const Streams stats = run_apart("store stats --json --store " + store);
  ASSERT_EQ(stats.status, 0) << stats.out << stats.err;
  EXPECT_PRED2(contains, stats.err, "has no checksum");
  nlohmann::json j;
  ASSERT_NO_THROW(j = nlohmann::json::parse(stats.out)) << stats.out;
  EXPECT_EQ(j["embeddings"], 2);

  const std::string records = store::records_path(store, "part");
  std::string bytes = read_file(records);
  bytes[bytes.size() / 2] ^= 1;  // in the payload of the second record
  write_file_atomic(records, bytes);
  const Streams verify = run_apart("store verify --json --store " + store);
  EXPECT_EQ(verify.status, 1) << verify.out << verify.err;
  EXPECT_PRED2(contains, verify.err, "is damaged (1 problems)");
  ASSERT_NO_THROW(j = nlohmann::json::parse(verify.out)) << verify.out;
  EXPECT_EQ(j["records_ok"], 1);
  EXPECT_EQ(j["damage"].size(), 1u);
  std::filesystem::remove_all(dir);
}

// checkpoint of a run folder whose newest checkpoint is damaged (a warning, the one before is
// summarised) and whose keys are not UTF-8: JSON that parses, the key's bad byte replaced.
TEST(JsonOutput, CheckpointJsonParsesWithItsWarningAndKeysThatAreNotUtf8) {
  const std::string dir = make_temp_dir("sd-json-out"), run = dir + "/run";
  std::filesystem::create_directories(run + "/checkpoints");
  io::TrainCheckpointFile ckpt;
  ckpt.meta.progress.step = 7;
  ckpt.model = {{"caf\xe9.weight", at::zeros({2, 3})}};
  ckpt.optimizer = at::zeros({8}, at::kByte);
  ckpt.rng_cpu = at::zeros({8}, at::kByte);
  io::write_train_checkpoint(run + "/checkpoints/step-00000007.pth", ckpt);
  write_file_atomic(run + "/checkpoints/step-00000009.pth", "cut short");
  const Streams s = run_apart("checkpoint --json --keys " + run);
  ASSERT_EQ(s.status, 0) << s.out << s.err;
  EXPECT_PRED2(contains, s.err, "passing over damaged checkpoint");
  nlohmann::json j;
  ASSERT_NO_THROW(j = nlohmann::json::parse(s.out)) << s.out;
  EXPECT_EQ(j["file"], run + "/checkpoints/step-00000007.pth");
  EXPECT_EQ(j["entries"][0][0], "caf\xef\xbf\xbd.weight");  // U+FFFD
  std::filesystem::remove_all(dir);
}

// embed's summary with a bad image among the good (a warning) and its progress on stderr.
TEST(JsonOutput, EmbedJsonParsesWithItsLogs) {
  SD_REQUIRE_FIXTURES();
  if (!data::image_decoding_available()) GTEST_SKIP() << "built without an image decoder";
  const std::optional<ModelFolder> teacher = first_folder(/*tiny_vit=*/false);
  ASSERT_TRUE(teacher);
  const std::string dir = make_temp_dir("sd-json-out"), images = dir + "/p";
  std::filesystem::create_directories(images);
  std::filesystem::copy_file(teacher->file("image.jpg"), images + "/good.jpg");
  std::ofstream(images + "/caf\xe9.jpg") << "not an image";
  const Streams s = run_apart("--threads 2 embed --json --teacher " + teacher->file("config.json") +
                              " --teacher-checkpoint " + teacher->file("weights.pth") + " --data " +
                              images + " --store " + dir + "/store");
  ASSERT_EQ(s.status, 0) << s.out << s.err;
  EXPECT_PRED2(contains, s.err, "caf\\xe9.jpg");
  nlohmann::json j;
  ASSERT_NO_THROW(j = nlohmann::json::parse(s.out)) << s.out;
  EXPECT_EQ(j["embedded"], 1);
  ASSERT_EQ(j["skipped"].size(), 1u) << s.out;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sd::testing
