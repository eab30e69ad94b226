// Every --json output parses as it comes: results on stdout, logs (warnings about skipped
// files, progress, bench's part names) on stderr, and names that are not UTF-8 escaped
// (issues 28 and 31).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"

namespace sd::testing {
namespace {

struct Streams {
  int status = -1;
  std::string out, err;
};

// The program's stdout and stderr apart.
Streams run_apart(const std::string& args, const std::string& dir) {
  const std::string err_path = dir + "/stderr.txt";
  const std::string command = binary_path() + " " + args + " 2>'" + err_path + "'";
  Streams s;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return s;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) s.out.append(buffer, n);
  s.status = WEXITSTATUS(pclose(pipe));
  std::ifstream err(err_path);
  s.err.assign(std::istreambuf_iterator<char>(err), std::istreambuf_iterator<char>());
  return s;
}

TEST(JsonOutput, DataStatsJsonParsesWithWarningsAndNamesThatAreNotUtf8) {
  const std::string dir = make_temp_dir("sd-json-out");
  std::filesystem::create_directories(dir + "/p");
  std::ofstream(dir + "/p/caf\xe9.png") << "not an image";
  std::ofstream(dir + "/p/two\nlines.jpg") << "not an image";
  const Streams run = run_apart("data stats --json --data '" + dir + "/p'", dir);
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
  const std::string dir = make_temp_dir("sd-json-out");
  const Streams run = run_apart("--threads 2 bench --json --repeats 1 --only store", dir);
  ASSERT_EQ(run.status, 0) << run.out << run.err;
  EXPECT_PRED2(contains, run.err, "bench: store");
  ASSERT_NO_THROW(nlohmann::json::parse(run.out)) << run.out;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sd::testing
