#include "io/run_folder.h"

#include <gtest/gtest.h>

#include "io/config.h"

namespace sd::io {
namespace {

// A folder given with a trailing '/' names its files with one '/' ("report//index.html" no more).
TEST(RunFolder, PathsHaveOneSlash) {
  EXPECT_EQ(in_folder("report/", "index.html"), "report/index.html");
  EXPECT_EQ(in_folder("report", "index.html"), "report/index.html");
  EXPECT_EQ(RunPaths{"runs/s2/"}.config(), "runs/s2/config.json");
  EXPECT_EQ(RunPaths{"/"}.final_weights(), "/final.pth");
}

// A config's relative paths become absolute against its folder; names stay names.
TEST(RunFolder, ConfigPathsBecomeAbsolute) {
  EXPECT_EQ(absolute_paths("../store", PathKind::file, "/a/cfgs"), "/a/store");
  EXPECT_EQ(absolute_paths("/x/y", PathKind::file, "/a"), "/x/y");
  EXPECT_EQ(absolute_paths("", PathKind::file, "/a"), "");
  EXPECT_EQ(absolute_paths(nlohmann::json::array({"p", "/q"}), PathKind::file, "/a"),
            nlohmann::json::array({"/a/p", "/q"}));
  EXPECT_EQ(absolute_paths("vit_t", PathKind::file_or_name, "/nonexistent"), "vit_t");
  EXPECT_EQ(absolute_paths("cfgs/s.json", PathKind::file_or_name, "/a"), "/a/cfgs/s.json");
  EXPECT_EQ(absolute_paths("x", PathKind::none, "/a"), "x");
}

}  // namespace
}  // namespace sd::io
