// Every --json output parses as it comes: results on stdout, logs (warnings about skipped
// files, progress, bench's part names) on stderr, and names that are not UTF-8 escaped
// (issues 28 and 31).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/streams.h"

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
  ASSERT_NO_THROW(nlohmann::json::parse(run.out)) << run.out;
}

}  // namespace
}  // namespace sd::testing
