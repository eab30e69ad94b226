#include "eval/picture.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "eval/caption.h"

namespace sd::eval {
namespace {

int64_t ink(const at::Tensor& band) { return (band == 0).all(2).sum().item<int64_t>(); }

TEST(Caption, DrawsTheGlyphsInBlackOnWhite) {
  at::Tensor band = caption_band("I", 20, 1);
  EXPECT_EQ(band.sizes(), (at::IntArrayRef{11, 20, 3}));  // 7 rows + 2 margins of 2
  EXPECT_EQ(ink(band), 11);                               // the 5x7 'I': 3 + 5 + 3 pixels
  EXPECT_EQ(ink(caption_band("i", 20, 1)), 11);           // lower case as upper case
  EXPECT_EQ(ink(caption_band("I", 20, 2)), 44);           // scale 2: 2x2 per font pixel
  EXPECT_EQ(ink(caption_band(" ", 20, 1)), 0);
  EXPECT_FALSE(at::equal(caption_band("IoU 0.50", 100), caption_band("IoU 0.58", 100)));
  // Glyphs at x = 2, 8, 14, ... (margin 2, 5 wide + 1 apart): only whole glyphs are drawn.
  EXPECT_EQ(ink(caption_band("IIIIIIIIII", 13, 1)), 22) << "two glyphs fit exactly";
  EXPECT_EQ(ink(caption_band("IIIIIIIIII", 12, 1)), 11) << "clipped to the glyphs that fit";
}

TEST(Caption, ComparisonPicturesCarryTheirCaption) {
  at::Tensor rgb = at::full({40, 60, 3}, 128, at::kByte);
  at::Tensor mask = at::zeros({40, 60}, at::kBool);
  models::Prompts prompt;
  prompt.box = at::tensor({5.f, 5.f, 30.f, 20.f});
  at::Tensor a = comparison(rgb, prompt, mask, mask, "box IoU 1.000", 60);
  at::Tensor b = comparison(rgb, prompt, mask, mask, "box IoU 0.250", 60);
  EXPECT_EQ(a.size(0), 40 + caption_band("x", 10).size(0));
  EXPECT_FALSE(at::equal(a, b));
  EXPECT_TRUE(at::equal(a.slice(0, a.size(0) - 40), b.slice(0, b.size(0) - 40))) << "the panels";
}

// A plain folder's ids hold '/': their pictures stay in the one folder.
TEST(Picture, NamesFlattenTheImagesPath) {
  PromptOutcome o{"street/cam1/0001", 3, "grid@8", "points 1,2,1"};
  o.iou = 0.5;
  EXPECT_EQ(picture_name(o), "street__cam1__0001_3_grid@8_iou0.500.png");
  o.image = "sa_1";
  EXPECT_EQ(picture_name(o), "sa_1_3_grid@8_iou0.500.png");
}

}  // namespace
}  // namespace sd::eval
