#include "util/crc32.h"

#include <gtest/gtest.h>

#include <string>

namespace sd {
namespace {

TEST(Crc32, KnownValuesOfZipAndPng) {
  EXPECT_EQ(crc32("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(crc32("", 0), 0u);
  EXPECT_EQ(crc32("IEND", 4), 0xAE426082u);  // the CRC every PNG ends with
}

TEST(Crc32, ContinuesAPreviousResultAtEveryLength) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += static_cast<char>(i * 37);
  for (size_t n = 0; n <= text.size(); ++n) {
    const size_t cut = n / 3;
    EXPECT_EQ(crc32(text.data() + cut, n - cut, crc32(text.data(), cut)), crc32(text.data(), n))
        << n;
  }
}

}  // namespace
}  // namespace sd
