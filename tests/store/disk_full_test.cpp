// Two processes on one store part, and a disk that fills during a write (RLIMIT_FSIZE in a
// child): the second writer is refused by the lock, and the full disk costs only what was not
// committed, as the error says.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>

#include "common/fixtures.h"
#include "store/reader.h"
#include "store/store_testing.h"
#include "store/writer.h"
#include "util/error.h"

namespace sd::store {
namespace {

using namespace sd::store::testing;
using sd::testing::contains;

TEST(StoreProcesses, ASecondProcessIsRefusedByTheLock) {
  const std::string dir = sd::testing::make_temp_dir("sd-lock");
  Writer writer(dir, test_manifest(), "part");
  writer.put(encode_embedding(key_of(0), values_of(0), DType::fp16));
  const Encoded record = encode_embedding(key_of(1), values_of(1), DType::fp16);
  const std::string outcome = sd::testing::in_child([&]() -> std::string {
    try {
      Writer second(dir, test_manifest(), "part");
      second.put(record);
      return "interleaved";
    } catch (const Error& e) {
      return e.what();
    }
  });
  EXPECT_EQ(outcome, "part 'part' of store '" + dir + "' is being written by another process");
  writer.commit();
  EXPECT_EQ(Reader(dir).entries().size(), 1u);
  std::filesystem::remove_all(dir);
}

TEST(StoreProcesses, FullDiskKeepsTheCommittedRecords) {
  const std::string dir = sd::testing::make_temp_dir("sd-full");
  {
    Writer writer(dir, test_manifest(), "part");
    for (int i = 0; i < 3; ++i) writer.put(encode_embedding(key_of(i), values_of(i), DType::fp16));
  }
  const std::string records = dir + "/part.records";
  const uint64_t size = std::filesystem::file_size(records);
  std::vector<Encoded> more;
  for (int i = 3; i < 6; ++i)
    more.push_back(encode_embedding(key_of(i), values_of(i), DType::fp16));
  const std::string outcome = sd::testing::in_child([&]() -> std::string {
    std::signal(SIGXFSZ, SIG_IGN);  // a write past the limit fails with EFBIG instead
    rlimit limit{size + 100, RLIM_INFINITY};
    setrlimit(RLIMIT_FSIZE, &limit);
    try {
      Writer writer(dir, test_manifest(), "part");
      for (const Encoded& record : more) writer.put(record);
      writer.commit();
      return "written";
    } catch (const Error& e) {
      return e.what();
    }
  });
  EXPECT_PRED2(contains, outcome, "cannot write '" + records + "': File too large");
  EXPECT_PRED2(contains, outcome,
               "part 'part' of store '" + dir + "' keeps its 3 committed records");
  Reader reader(dir);
  ASSERT_EQ(reader.entries().size(), 3u);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(at::allclose(reader.read(reader.entries()[i]).to(at::kFloat),
                             values_of(i).to(at::kHalf).to(at::kFloat)));
  Writer again(dir, test_manifest(), "part");  // continues, dropping the torn record
  again.put(encode_embedding(key_of(3), values_of(3), DType::fp16));
  again.commit();
  EXPECT_EQ(again.committed(), 4u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sd::store
