#include "util/progress.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace sd {
namespace {

size_t lines_of(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

// In a log (stderr is not a terminal under the test runner), the last line is printed once.
TEST(Progress, ALogGetsTheLastLineOnce) {
  ::testing::internal::CaptureStderr();
  {
    Progress bar("work", 3);
    bar.update(1);  // within 10 s of the start: not printed
    bar.update(3);  // the end: printed
    bar.finish();   // already printed
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(lines_of(log), 1u) << log;
  EXPECT_EQ(log.rfind("work 3/3 (100%)", 0), 0u) << log;
}

TEST(Progress, FinishPrintsALineNotYetPrinted) {
  ::testing::internal::CaptureStderr();
  {
    Progress bar("work", 3);
    bar.update(2);
    bar.finish("done");
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(lines_of(log), 1u) << log;
  EXPECT_NE(log.find("work 2/3 (66%)"), std::string::npos) << log;
  EXPECT_NE(log.find("| done"), std::string::npos) << log;
}

}  // namespace
}  // namespace sd
