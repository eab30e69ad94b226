// A disk that fills while a checkpoint is written (simulated by RLIMIT_FSIZE in a child):
// the previous checkpoint stays as it was, no temporary file is left, and the error says so.
#include <ATen/ATen.h>
#include <sys/resource.h>

#include <csignal>
#include <filesystem>

#include "common/fixtures.h"
#include "io/checkpoint.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace sd::io {
namespace {

using sd::testing::contains;

TEST(DiskFull, CheckpointWriteLeavesThePreviousOneIntact) {
  const std::string dir = sd::testing::make_temp_dir("sd-full");
  const std::string path = dir + "/final.pth";
  write_state_dict(path, {{"w", at::arange(16, at::kFloat)}});
  const std::string before = read_file(path);

  const StateDict larger = {{"w", at::arange(1 << 16, at::kFloat)}};
  const std::string outcome = sd::testing::in_child([&]() -> std::string {
    std::signal(SIGXFSZ, SIG_IGN);  // a write past the limit fails with EFBIG instead
    rlimit limit{before.size() + 4096, RLIM_INFINITY};
    setrlimit(RLIMIT_FSIZE, &limit);
    try {
      write_state_dict(path, larger);
      return "written";
    } catch (const Error& e) {
      return e.what();
    }
  });
  EXPECT_PRED2(contains, outcome, "cannot write '" + path + ".tmp.");
  EXPECT_PRED2(contains, outcome, "File too large ('" + path + "' is left as it was)");
  EXPECT_EQ(read_file(path), before);
  EXPECT_TRUE(at::equal(read_state_dict(path).at(0).second, at::arange(16, at::kFloat)));
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1u) << "a temporary file was left behind";
  std::filesystem::remove_all(dir);
}

// A file written in pieces (an ONNX model's external data, as it is serialised) replaces the
// old one only when committed; abandoned (an exception on the way), it leaves no trace.
TEST(AtomicFile, PiecesReplaceTheFileOnlyOnCommit) {
  const std::string dir = sd::testing::make_temp_dir("sd-pieces");
  const std::string path = dir + "/data";
  write_file_atomic(path, "old");
  {
    AtomicFile file(path);
    file.write("new ");
    file.write("bytes");
    EXPECT_EQ(read_file(path), "old");
  }
  EXPECT_EQ(read_file(path), "old");
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1u) << "an abandoned temporary file was left behind";
  AtomicFile file(path);
  file.write("new ");
  file.write("bytes");
  file.commit();
  EXPECT_EQ(read_file(path), "new bytes");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sd::io
