#include "util/clock.h"

#include <gtest/gtest.h>

namespace sd {
namespace {

TEST(Median, IsTheMiddleTimingOrTheMeanOfTheTwoMiddleOnes) {
  EXPECT_EQ(median({3.0, 1.0, 2.0}), 2.0);
  EXPECT_EQ(median({7.5, 6.5}), 7.0);  // not the slower run
  EXPECT_EQ(median({4.0, 1.0, 3.0, 2.0}), 2.5);
  EXPECT_EQ(median({5.0}), 5.0);
  EXPECT_EQ(median({}), 0.0);
}

}  // namespace
}  // namespace sd
