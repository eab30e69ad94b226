// Found by fuzz/config_fuzz.cpp: a number too large for a double (1e999) escaped as
// nlohmann's out_of_range instead of an error naming the file.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/fixtures.h"
#include "io/config.h"
#include "util/atomic_file.h"

namespace sd::io {
namespace {

using sd::testing::contains;

TEST(HostileConfig, NumberOutOfRangeNamesTheFile) {
  const std::string dir = sd::testing::make_temp_dir("sd-config");
  const std::string path = dir + "/model.json";
  write_file_atomic(path, "{\"embed_dim\": 8e888}");
  const std::string message = sd::testing::error_of([&] { read_json_file(path); });
  EXPECT_PRED2(contains, message, "malformed JSON in '" + path + "'");
  EXPECT_PRED2(contains, message, "number overflow");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sd::io
