#include "util/temp_folder.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <stdexcept>

#include "util/text.h"

namespace sd {
namespace {

namespace fs = std::filesystem;

TEST(TempFolder, IsNewPrivateAndGoesWithAllItHoldsOnAnErrorToo) {
  fs::path kept;
  try {
    const TempFolder a("samdistill-temp-test-"), b("samdistill-temp-test-");
    kept = a.path();
    EXPECT_NE(a.path(), b.path());
    EXPECT_EQ(a.path().parent_path(), fs::temp_directory_path());
    EXPECT_TRUE(starts_with(a.path().filename().string(), "samdistill-temp-test-"));
    struct stat st {};
    ASSERT_EQ(::stat(a.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    fs::create_directories(a.path() / "sub");
    std::ofstream(a / "sub/file") << "x";
    EXPECT_EQ(a / "sub/file", (a.path() / "sub/file").string());
    throw std::runtime_error("on the way out");
  } catch (const std::runtime_error&) {
  }
  EXPECT_FALSE(fs::exists(kept));
}

}  // namespace
}  // namespace sd
