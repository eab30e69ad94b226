#include "util/crc32.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "util/crc32c.h"

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

TEST(Crc32c, KnownVectorsAndBothPaths) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  std::string zeros(32, '\0');
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);  // RFC 3720 B.4
  std::string text(1000, '\0');
  for (size_t i = 0; i < text.size(); ++i) text[i] = char(i * 7 + 3);
  for (size_t n : {0, 1, 7, 8, 9, 63, 1000}) {
    EXPECT_EQ(crc32c(text.data(), n), crc32c_portable(text.data(), n)) << n;
    EXPECT_EQ(crc32c(text.data() + 5, n - std::min<size_t>(n, 5),
                     crc32c(text.data(), std::min<size_t>(n, 5))),
              crc32c(text.data(), n))
        << n;
  }
}

}  // namespace
}  // namespace sd
