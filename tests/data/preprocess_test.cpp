#include "data/preprocess.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/fixtures.h"
#include "data/image.h"
#include "data/pil_resize.h"
#include "models/preprocess.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace sd::data {
namespace {

#define SD_REQUIRE_DECODER() \
  if (!image_decoding_available()) GTEST_SKIP() << "built without OpenCV: no image decoder"

at::Tensor decode_sample(const std::string& name) {
  const std::string path = testing::data_sample() + "/" + name;
  return default_image_decoder()(read_file(path), path);
}

struct PilExpectation {
  const char* file;
  int64_t h, w;  // resized
  int64_t decoded_sum, resized_sum;
  std::array<int, 3> first, middle, last;  // pixels (0,0), (h/2, w/3), (h-1, w-1)
};

// Computed with PIL 9.4 (Debian python3-pil): Image.open(f).convert("RGB"), sum of all bytes,
// then .resize((w, h), Image.BILINEAR) with (h, w) = int(x * 1024 / max(H, W) + 0.5).
const PilExpectation kPil[] = {
    {"sa_100001.jpg", 683, 1024, 880156153, 284990888, {62, 45, 51}, {15, 13, 18}, {202, 197, 203}},
    {"sa_100002.jpg",
     684,
     1024,
     135917074,
     222858118,
     {204, 205, 135},
     {71, 57, 50},
     {152, 154, 166}},
    {"sa_100004.jpg", 1024, 1023, 113936208, 201568218, {2, 2, 4}, {254, 227, 16}, {10, 68, 150}},
    {"sa_100007.jpg", 683, 1024, 943497579, 236201206, {80, 53, 36}, {196, 185, 121}, {97, 82, 43}},
};

std::array<int, 3> pixel(const at::Tensor& img, int64_t y, int64_t x) {
  at::Tensor p = img[y][x].to(at::kInt);
  return {p[0].item<int>(), p[1].item<int>(), p[2].item<int>()};
}

// Down- (1800x1200, 2048x1365 progressive) and up-scaling (800x534, 769x770), bit for bit.
TEST(Preprocess, DecodeAndResizeMatchPil) {
  SD_REQUIRE_DECODER();
  for (const auto& e : kPil) {
    SCOPED_TRACE(e.file);
    at::Tensor rgb = decode_sample(e.file);
    EXPECT_EQ(rgb.to(at::kLong).sum().item<int64_t>(), e.decoded_sum);  // same libjpeg-turbo IDCT
    at::Tensor r = resize_longest_side(rgb);
    ASSERT_EQ(r.sizes(), (at::IntArrayRef{e.h, e.w, 3}));
    EXPECT_EQ(r.to(at::kLong).sum().item<int64_t>(), e.resized_sum);
    EXPECT_EQ(pixel(r, 0, 0), e.first);
    EXPECT_EQ(pixel(r, e.h / 2, e.w / 3), e.middle);
    EXPECT_EQ(pixel(r, e.h - 1, e.w - 1), e.last);
  }
}

TEST(Preprocess, ResizeOfConstantImageIsConstant) {
  at::Tensor img = at::full({37, 91, 3}, 200, at::kByte);
  EXPECT_TRUE(pil_resize_bilinear(img, 13, 40).eq(200).all().item<bool>());
  EXPECT_TRUE(pil_resize_bilinear(img, 100, 300).eq(200).all().item<bool>());
  EXPECT_TRUE(pil_resize_bilinear(img, 37, 91).equal(img));
  at::Tensor grey = at::full({5, 7, 1}, 9, at::kByte);
  EXPECT_EQ(pil_resize_bilinear(grey, 3, 7).sizes(), (at::IntArrayRef{3, 7, 1}));
  EXPECT_THROW(pil_resize_bilinear(at::zeros({5, 7}, at::kByte), 3, 3), Error);
}

// The RGB resize (AVX2 where the CPU has it) against the plain one-channel resize of each
// channel: down by 2.6 (7 taps), 1.76 and 1.4 (5), up (3) and none.
TEST(Preprocess, RgbResizeEqualsPerChannelResize) {
  at::manual_seed(0);
  const at::Tensor img = at::randint(0, 256, {157, 211, 3}, at::kByte);
  for (auto [h, w] : {std::pair{60, 80}, std::pair{157, 120}, std::pair{90, 150},
                      std::pair{300, 400}, std::pair{157, 211}}) {
    SCOPED_TRACE(std::to_string(h) + "x" + std::to_string(w));
    const at::Tensor rgb = pil_resize_bilinear(img, h, w);
    for (int64_t c = 0; c < 3; ++c)
      EXPECT_TRUE(rgb.select(2, c).equal(
          pil_resize_bilinear(img.slice(2, c, c + 1).contiguous(), h, w).squeeze(2)));
  }
}

// preprocess() normalises the resized rows as they come: the same bits as the two steps.
TEST(Preprocess, FusedEqualsResizeThenNormalise) {
  SD_REQUIRE_DECODER();
  for (const auto& e : kPil) {
    SCOPED_TRACE(e.file);
    const at::Tensor rgb = decode_sample(e.file);
    const at::Tensor expected = models::normalize_and_pad(resize_longest_side(rgb)).squeeze(0);
    EXPECT_TRUE(preprocess(rgb).pixels.equal(expected));
  }
}

TEST(Preprocess, NormalisedAndPadded) {
  SD_REQUIRE_DECODER();
  at::Tensor rgb = decode_sample("sa_100002.jpg");
  PreprocessedImage p = preprocess(rgb);
  EXPECT_EQ(p.pixels.sizes(), (at::IntArrayRef{3, 1024, 1024}));
  EXPECT_EQ(p.original_size, (models::Size2{534, 800}));
  EXPECT_EQ(p.input_size, (models::Size2{684, 1024}));
  EXPECT_EQ(p.pixels.slice(1, 684).abs().sum().item<float>(), 0.0f);
  // Pixel (0,0) resizes to (204, 205, 135) (PIL, above): (204 - 123.675) / 58.395.
  EXPECT_NEAR(p.pixels[0][0][0].item<float>(), (204 - 123.675) / 58.395, 1e-5);
  EXPECT_NEAR(p.pixels[2][0][0].item<float>(), (135 - 103.53) / 57.375, 1e-5);
}

// The structure walk alone (no decoder needed).
TEST(Image, JpegStructureCheck) {
  const std::string bytes = read_file(testing::data_sample() + "/sa_100007.jpg");  // progressive
  EXPECT_NO_THROW(check_jpeg_complete(bytes, "a.jpg"));
  EXPECT_NO_THROW(check_jpeg_complete(bytes + "trailing bytes", "a.jpg"));
  // Stray bytes between segments are skipped, as libjpeg does (with a warning).
  const size_t after_app0 = 4 + ((uint8_t(bytes[4]) << 8) | uint8_t(bytes[5]));
  ASSERT_EQ(uint8_t(bytes[after_app0]), 0xFF);
  std::string stray = bytes;
  stray.insert(after_app0, "\x12\x34");
  EXPECT_NO_THROW(check_jpeg_complete(stray, "a.jpg"));
  EXPECT_PRED2(testing::contains,
               testing::error_of([&] { check_jpeg_complete(bytes.substr(0, 1000), "a.jpg"); }),
               "a.jpg: truncated JPEG");
  EXPECT_PRED2(testing::contains, testing::error_of([] {
                 check_jpeg_complete(std::string("\xFF\xD8\xFF\xE0\x00\x01", 6), "b.jpg");
               }),
               "b.jpg: corrupt JPEG (segment length 1)");
  EXPECT_NO_THROW(check_jpeg_complete("\x89PNG", "c.png"));  // not a JPEG: left to the decoder
}

TEST(Image, TruncatedJpegIsRejected) {
  SD_REQUIRE_DECODER();
  for (const char* name : {"sa_100001.jpg", "sa_100007.jpg"}) {  // baseline, progressive
    const std::string bytes = read_file(testing::data_sample() + "/" + name);
    EXPECT_NO_THROW(check_jpeg_complete(bytes, name));
    for (double keep : {0.1, 0.5, 0.9, 0.999}) {
      const std::string cut = bytes.substr(0, static_cast<size_t>(bytes.size() * keep));
      try {
        default_image_decoder()(cut, "cut.jpg");
        ADD_FAILURE() << name << " cut to " << keep << " decoded";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("cut.jpg: truncated JPEG"), std::string::npos)
            << e.what();
      }
    }
    // The last two bytes are the EOI marker.
    EXPECT_THROW(check_jpeg_complete(bytes.substr(0, bytes.size() - 2), name), Error);
  }
}

// tests/data/assets: 32x24 images written by PIL 9.4; expected values from PIL's
// Image.open(f).convert("RGB"): the sum of all bytes and pixel (row 5, col 7). Grey and PNG
// match exactly; OpenCV's CMYK -> RGB rounds differently from PIL's (its sum is 272717, 1981
// above PIL's over 2304 values), so CMYK is held to 1 grey level per value.
TEST(Image, GreyCmykAndPngBecomeRgb) {
  SD_REQUIRE_DECODER();
  struct Case {
    const char* file;
    int64_t sum;
    std::array<int, 3> pixel;
  };
  for (const Case& c :
       {Case{"grey.jpg", 307962, {74, 74, 74}}, Case{"rgba.png", 266496, {56, 50, 48}},
        Case{"cmyk.jpg", 270736, {168, 173, 175}}}) {
    SCOPED_TRACE(c.file);
    const std::string path = testing::source_dir() + "/tests/data/assets/" + c.file;
    at::Tensor rgb = default_image_decoder()(read_file(path), path);
    ASSERT_EQ(rgb.sizes(), (at::IntArrayRef{24, 32, 3}));
    const bool cmyk = std::string(c.file) == "cmyk.jpg";
    const int64_t sum = rgb.to(at::kLong).sum().item<int64_t>();
    EXPECT_EQ(sum, cmyk ? 272717 : c.sum);
    EXPECT_LE(std::abs(sum - c.sum), cmyk ? rgb.numel() : 0);
    for (int k = 0; k < 3; ++k) EXPECT_NEAR(pixel(rgb, 5, 7)[k], c.pixel[k], cmyk ? 1 : 0);
  }
}

TEST(Image, GarbageIsRejected) {
  SD_REQUIRE_DECODER();
  EXPECT_THROW(default_image_decoder()(std::string(1000, 'x'), "garbage.jpg"), Error);
  EXPECT_THROW(default_image_decoder()("", "empty.jpg"), Error);
}

}  // namespace
}  // namespace sd::data
