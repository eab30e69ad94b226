// The JPEG decoders behind default_image_decoder: libjpeg-turbo's API gives OpenCV's pixels.
#include "data/image_decoders.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "common/fixtures.h"
#include "data/image.h"

namespace sd::data {
namespace {

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string encode(const cv::Mat& image, const std::string& extension) {
  std::vector<uint8_t> bytes;
  EXPECT_TRUE(cv::imencode(extension, image, bytes));
  return {bytes.begin(), bytes.end()};
}

#ifdef SAMDISTILL_WITH_TURBOJPEG
TEST(ImageDecoders, TurboJpegGivesOpenCvsPixels) {
  int jpegs = 0;
  for (const auto& file : std::filesystem::directory_iterator(testing::data_sample())) {
    if (file.path().extension() != ".jpg") continue;
    const std::string bytes = read_bytes(file.path());
    const std::optional<at::Tensor> turbo = decode_jpeg_turbojpeg(bytes);
    ASSERT_TRUE(turbo.has_value()) << file.path();
    EXPECT_TRUE(at::equal(*turbo, decode_image_opencv(bytes, file.path().string()))) << file.path();
    ++jpegs;
  }
  EXPECT_GT(jpegs, 0) << "no JPEG in " << testing::data_sample();
  cv::Mat grey(37, 53, CV_8UC1);
  cv::randu(grey, 0, 255);
  const std::string grey_jpeg = encode(grey, ".jpg");
  ASSERT_TRUE(decode_jpeg_turbojpeg(grey_jpeg).has_value());
  EXPECT_TRUE(at::equal(*decode_jpeg_turbojpeg(grey_jpeg), decode_image_opencv(grey_jpeg, "grey")));
}

TEST(ImageDecoders, TurboJpegLeavesOtherFormatsAndBrokenDataToOpenCv) {
  cv::Mat image(8, 8, CV_8UC3, cv::Scalar(1, 2, 3));
  EXPECT_FALSE(decode_jpeg_turbojpeg(encode(image, ".png")).has_value());
  std::string broken = encode(image, ".jpg");
  std::fill(broken.begin() + 2, broken.end() - 2, '\0');  // SOI and EOI around nothing
  EXPECT_FALSE(decode_jpeg_turbojpeg(broken).has_value());
  EXPECT_THROW(default_image_decoder()(broken, "broken.jpg"), std::exception);
}
#endif

}  // namespace
}  // namespace sd::data
