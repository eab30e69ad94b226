#include "util/sha256.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/fixtures.h"
#include "util/error.h"

namespace sd {
namespace {

TEST(Sha256, KnownDigests) {
  EXPECT_EQ(sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc", 3),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(sha256_hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, FileMatchesIncrementalUpdates) {
  std::string bytes(3 * 1024 * 1024 + 17, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = char(i * 31 + (i >> 9));
  std::string path = testing::make_temp_dir("sha") + "/file";
  std::ofstream(path, std::ios::binary) << bytes;
  Sha256 pieces;
  for (size_t at = 0; at < bytes.size(); at += 1000)
    pieces.update(bytes.data() + at, std::min<size_t>(1000, bytes.size() - at));
  EXPECT_EQ(sha256_file(path), pieces.hex_digest());
  EXPECT_EQ(sha256_file(path), sha256_hex(bytes.data(), bytes.size()));
  EXPECT_THROW(sha256_file(path + ".missing"), Error);
}

}  // namespace
}  // namespace sd
