#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "common/fixtures.h"
#include "store/part.h"
#include "store/reader.h"
#include "store/store_testing.h"
#include "store/verify.h"
#include "store/writer.h"

namespace fs = std::filesystem;

namespace sd::store {
namespace {

using namespace sd::store::testing;

constexpr int kRecords = 24;

// What `embed` does on every run: skip committed keys, write and commit the rest.
// `pause_us` stands in for the teacher's compute time between records.
void fill(const std::string& dir, const std::vector<Encoded>& records, int pause_us) {
  std::vector<const Encoded*> todo;
  if (fs::exists(dir + "/manifest.json")) {
    Reader done(dir);
    for (const Encoded& r : records)
      if (!done.find(Kind::embedding, r.info.key)) todo.push_back(&r);
  } else {
    for (const Encoded& r : records) todo.push_back(&r);
  }
  Writer writer(dir, test_manifest(DType::fp32), "part");
  for (size_t i = 0; i < todo.size(); ++i) {
    writer.put(*todo[i]);
    if (i % 2 == 1) writer.commit();
    if (pause_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
  }
}

// Forks a child that runs fill() and SIGKILLs it once `committed` records are indexed.
// The child touches no ATen compute (its records are encoded before the fork).
bool run_and_kill(const std::string& dir, const std::vector<Encoded>& records, size_t committed) {
  pid_t pid = fork();
  if (pid == 0) {
    fill(dir, records, 2000);
    _exit(0);
  }
  std::string index = index_path(dir, "part");
  for (;;) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return false;  // finished before the kill
    std::error_code ec;
    if (fs::file_size(index, ec) >= committed * kIndexEntryBytes && !ec) break;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status);
}

TEST(Resume, KilledRunsContinueToTheSameStore) {
  std::vector<Encoded> records;
  for (int i = 0; i < kRecords; ++i)  // 256 KiB each, so that kills land in writes too
    records.push_back(
        encode_embedding(key_of(i), at::randn({64, 32, 32}) * values_of(i).mean(), DType::fp32));
  std::string root = sd::testing::make_temp_dir("resume");
  std::string whole = root + "/whole", resumed = root + "/resumed";
  fill(whole, records, 0);

  for (size_t kill_at : {3, 8, 15}) {
    EXPECT_TRUE(run_and_kill(resumed, records, kill_at))
        << "child finished before the kill at " << kill_at;
    VerifyReport report = verify_store(resumed);
    EXPECT_TRUE(report.ok()) << report.to_json().dump();
    EXPECT_GE(Reader(resumed).entries().size(), kill_at);
  }
  fill(resumed, records, 0);

  EXPECT_TRUE(verify_store(resumed).ok());
  for (const char* file : {"/manifest.json", "/part.records", "/part.index"})
    EXPECT_EQ(read_bytes(resumed + file), read_bytes(whole + file)) << file;
  fs::remove_all(root);
}

}  // namespace
}  // namespace sd::store
