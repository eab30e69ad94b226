#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/fixtures.h"
#include "data/image.h"
#include "data/preprocess.h"
#include "io/checkpoint.h"
#include "util/atomic_file.h"

namespace sd::data {
namespace {

// README: "the resize of the original JPEG within 1 grey level of `image_resized` per pixel".
TEST(ResizeReference, MatchesImageResizedOfEveryModel) {
  SD_REQUIRE_FIXTURES();
  if (!image_decoding_available()) GTEST_SKIP() << "built without OpenCV: no image decoder";
  const auto folders = testing::model_folders();
  ASSERT_FALSE(folders.empty());
  for (const auto& folder : folders) {
    SCOPED_TRACE(folder.path);
    const c10::impl::GenericDict cases =
        io::read_torch_file(folder.file("cases.pth")).toGenericDict();
    const at::Tensor expected = cases.at("image_resized").toTensor();
    const at::Tensor original_size = cases.at("original_size").toTensor();
    const at::Tensor input_size = cases.at("input_size").toTensor();

    const std::string jpg = folder.file("image.jpg");
    at::Tensor rgb = default_image_decoder()(read_file(jpg), jpg);
    EXPECT_EQ(rgb.size(0), original_size[0].item<int64_t>());
    EXPECT_EQ(rgb.size(1), original_size[1].item<int64_t>());
    at::Tensor resized = resize_longest_side(rgb);
    ASSERT_EQ(resized.sizes(), expected.sizes());
    EXPECT_EQ(resized.size(0), input_size[0].item<int64_t>());
    const int64_t max_diff =
        (resized.to(at::kInt) - expected.to(at::kInt)).abs().max().item<int64_t>();
    EXPECT_LE(max_diff, 1);
    const int64_t differing = resized.ne(expected).sum().item<int64_t>();
    RecordProperty("max_grey_level_difference", static_cast<int>(max_diff));
    RecordProperty("differing_values", static_cast<int>(differing));
    std::cout << folder.name << ": max |diff| " << max_diff << ", differing values " << differing
              << "\n";
  }
}

}  // namespace
}  // namespace sd::data
