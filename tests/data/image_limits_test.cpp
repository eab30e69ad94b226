// Decompression bombs: a few kilobytes that declare billions of pixels are refused from their
// header, before the decoder allocates them.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "common/fixtures.h"
#include "data/image.h"
#include "util/atomic_file.h"
#include "util/crc32.h"
#include "util/error.h"

namespace sd::data {
namespace {

using sd::testing::contains;
using sd::testing::error_of;

std::string big_endian(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }

std::string chunk(const std::string& type, const std::string& data) {
  const std::string body = type + data;
  return big_endian(data.size()) + body + big_endian(crc32(body.data(), body.size()));
}

// A valid PNG header declaring width x height RGB pixels, then a few bytes of image data.
std::string png_declaring(uint32_t width, uint32_t height) {
  return std::string("\x89PNG\r\n\x1a\n", 8) +
         chunk("IHDR", big_endian(width) + big_endian(height) + std::string("\x08\x02\0\0\0", 5)) +
         chunk("IDAT", std::string("\x78\x9c\x63\x00\x00\x00\x01\x00\x01", 9)) + chunk("IEND", "");
}

std::string sample_jpeg() { return read_file(sd::testing::data_sample() + "/sa_100001.jpg"); }

TEST(ImageLimits, DeclaredSizesOfPngAndJpeg) {
  EXPECT_EQ(declared_image_size(png_declaring(50000, 40000)),
            (std::array<int64_t, 2>{50000, 40000}));
  const auto jpeg = declared_image_size(sample_jpeg());
  ASSERT_TRUE(jpeg.has_value());
  EXPECT_GT((*jpeg)[0] * (*jpeg)[1], 1000000);
  EXPECT_FALSE(declared_image_size("plain text").has_value());
  EXPECT_FALSE(declared_image_size(std::string("\xFF\xD8\xFF", 3)).has_value());
}

TEST(ImageLimits, PngBombIsRefusedBeforeDecoding) {
  if (!image_decoding_available()) GTEST_SKIP() << "built without OpenCV";
  for (uint32_t side : {50000u, 30000u}) {  // 30000^2 is under OpenCV's own limit of 2^30
    const std::string bomb = png_declaring(side, side);
    ASSERT_LT(bomb.size(), 100u);
    const std::string message = error_of([&] { default_image_decoder()(bomb, "bomb.png"); });
    EXPECT_PRED2(contains, message,
                 "bomb.png: image of " + std::to_string(side) + " x " + std::to_string(side) +
                     " pixels is over the limit of 100000000");
  }
}

TEST(ImageLimits, JpegOverALowerLimitIsRefusedAndTheLimitIsConfigurable) {
  if (!image_decoding_available()) GTEST_SKIP() << "built without OpenCV";
  const std::string jpeg = sample_jpeg();
  EXPECT_EQ(default_image_decoder()(jpeg, "a.jpg").dim(), 3);
  EXPECT_PRED2(contains, error_of([&] { default_image_decoder(1000000)(jpeg, "a.jpg"); }),
               "pixels is over the limit of 1000000");
  setenv("SAMDISTILL_MAX_IMAGE_PIXELS", "1000", 1);
  EXPECT_EQ(max_image_pixels(), 1000);
  EXPECT_PRED2(contains, error_of([&] { default_image_decoder()(jpeg, "a.jpg"); }),
               "over the limit of 1000");
  setenv("SAMDISTILL_MAX_IMAGE_PIXELS", "lots", 1);
  EXPECT_PRED2(contains, error_of([] { max_image_pixels(); }), "not a positive integer");
  unsetenv("SAMDISTILL_MAX_IMAGE_PIXELS");
}

}  // namespace
}  // namespace sd::data
