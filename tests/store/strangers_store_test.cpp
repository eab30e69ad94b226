// Stores from strangers (issue 31, cases 7 and 8): a writer never writes through a symlink or
// into anything but a regular file it made, and an index entry's absurd size is damage named by
// verify, never an allocation of it.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "store/part.h"
#include "store/reader.h"
#include "store/store_testing.h"
#include "store/verify.h"
#include "store/writer.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace sd::store {
namespace {

using namespace sd::store::testing;
using sd::testing::contains;
using sd::testing::error_of;

std::string write_store(const std::string& dir, int count) {
  Writer writer(dir, test_manifest(), "part");
  for (int i = 0; i < count; ++i)
    writer.put(encode_embedding(key_of(i), values_of(i), DType::fp16));
  return dir;
}

// 7. A store file that is a symlink (to a file elsewhere) or a FIFO is refused before anything
// is written, and the file elsewhere keeps its bytes.
TEST(StrangerStores, Case7_WriterRefusesSymlinksAndOtherFiles) {
  const std::string root = sd::testing::make_temp_dir("sd-stranger-store");
  const std::string victim = root + "/victim.txt";
  write_bytes(victim, "precious");
  for (const std::string file : {"part.records", "part.index", "manifest.json"}) {
    const std::string dir = write_store(root + "/s-" + file, 3);
    fs::remove(dir + "/" + file);
    fs::create_symlink(victim, dir + "/" + file);
    const std::string message = error_of([&] { write_store(dir, 4); });
    EXPECT_PRED2(contains, message, "store file '" + dir + "/" + file + "' is a symlink");
    EXPECT_PRED2(contains, message, "nothing written");
    EXPECT_EQ(read_bytes(victim), "precious") << file;
  }
  const std::string dir = write_store(root + "/fifo", 2);
  fs::remove(dir + "/part.index");
  ASSERT_EQ(::mkfifo((dir + "/part.index").c_str(), 0644), 0);
  EXPECT_PRED2(contains, error_of([&] { write_store(dir, 4); }), "is not a regular file");
  EXPECT_PRED2(contains, error_of([&] { Reader reader(dir); }), "a FIFO, not a regular file");
  EXPECT_FALSE(verify_store(dir).ok());
  fs::remove_all(root);
}

// 8. Index entries with a valid checksum and a payload of 2^40 or 2^63 bytes.
TEST(StrangerStores, Case8_AbsurdPayloadSizesAreDamageNamingTheEntry) {
  const std::string root = sd::testing::make_temp_dir("sd-stranger-store");
  for (const uint64_t payload : {uint64_t(1) << 40, uint64_t(1) << 63}) {
    const std::string dir = write_store(root + "/s" + std::to_string(payload), 3);
    LoadedIndex index = load_index(index_path(dir, "part"), false);
    index.entries.back().info.payload_bytes = payload;
    std::string bytes;
    for (const IndexEntry& e : index.entries) bytes += encode_index_entry(e);
    write_bytes(index_path(dir, "part"), bytes);

    const VerifyReport report = verify_store(dir);
    EXPECT_FALSE(report.ok());
    EXPECT_EQ(report.records_ok, 2u);
    ASSERT_EQ(report.damage.size(), 1u);
    EXPECT_PRED2(contains, report.damage[0],
                 payload > (uint64_t(1) << 50) ? "entry 2 at byte 256: impossible offset"
                                               : "key '" + key_of(2) + "'");
    // `store stats` counts the entry as damage, not as a terabyte.
    if (payload < (uint64_t(1) << 50)) {
      const nlohmann::json stats = Reader(dir).stats();
      EXPECT_EQ(stats["records_past_end"], 1);
      EXPECT_EQ(stats["embeddings"], 2);
      EXPECT_LT(stats["embedding_bytes"].get<uint64_t>(), uint64_t(1) << 20);
      EXPECT_PRED2(contains, error_of([&] { Reader(dir).embedding(key_of(2)); }),
                   "past the end of the shard");
    } else {
      EXPECT_PRED2(contains, error_of([&] { Reader reader(dir); }), "impossible offset");
    }
  }
  fs::remove_all(root);
}

}  // namespace
}  // namespace sd::store
