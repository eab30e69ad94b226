#include "eval/picture.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "common/fixtures.h"
#include "eval/caption.h"
#include "util/atomic_file.h"
#include "util/error.h"

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
  at::Tensor a = comparison(rgb, prompt, {}, mask, mask, "box IoU 1.000", 60);
  at::Tensor b = comparison(rgb, prompt, {}, mask, mask, "box IoU 0.250", 60);
  EXPECT_EQ(a.size(0), 40 + caption_band("x", 10).size(0));
  EXPECT_FALSE(at::equal(a, b));
  EXPECT_TRUE(at::equal(a.slice(0, a.size(0) - 40), b.slice(0, b.size(0) - 40))) << "the panels";
}

// A mask is a tint with an outline in its colour, so that its edge shows on any image.
TEST(Picture, MasksAreTintedAndOutlined) {
  const at::Tensor rgb = at::full({40, 60, 3}, 100, at::kByte);
  at::Tensor mask = at::zeros({40, 60}, at::kBool);
  mask.slice(0, 10, 30).slice(1, 10, 40).fill_(true);
  const at::Tensor t = tint(rgb, mask, {200, 0, 0});
  EXPECT_EQ(t[20][25][0].item<int>(), 150) << "inside: half strength";
  EXPECT_EQ(t[20][25][2].item<int>(), 50);
  EXPECT_EQ(t[10][25][0].item<int>(), 200) << "the edge: full colour";
  EXPECT_EQ(t[10][25][1].item<int>(), 0);
  EXPECT_EQ(t[20][39][0].item<int>(), 200);
  EXPECT_EQ(t[5][5][0].item<int>(), 100) << "outside: untouched";
}

// Where the ground truth is known (vs GT is reported), it is a panel of its own; the prompts
// are drawn at the panels' size, a point some pixels wide however large the image.
TEST(Picture, TheGroundTruthIsAPanelAndPointsAreVisibleAtThePicturesScale) {
  const at::Tensor rgb = at::full({1000, 1500, 3}, 128, at::kByte);
  const at::Tensor mask = at::zeros({1000, 1500}, at::kBool);
  models::Prompts point;
  point.point_coords = at::tensor({750.f, 500.f}).view({1, 2});
  point.point_labels = at::tensor({1}, at::kInt);
  const at::Tensor three = comparison(rgb, point, {}, mask, mask, "p", 384);
  const at::Tensor four = comparison(rgb, point, mask, mask, mask, "p", 384);
  EXPECT_EQ(three.size(1), 3 * 384 + 2 * 8);
  EXPECT_EQ(four.size(1), 4 * 384 + 3 * 8);
  // The foreground point's green square in the first panel (256 x 384 under the caption).
  const at::Tensor panel = four.slice(0, four.size(0) - 256).slice(1, 0, 384);
  const at::Tensor green = (panel.select(2, 1) == 200) & (panel.select(2, 0) == 0);
  EXPECT_GE(green.sum().item<int64_t>(), 7 * 7) << "a point at least 7 pixels wide";
  const at::Tensor rows = green.any(1).nonzero(), cols = green.any(0).nonzero();
  EXPECT_NEAR((rows.min() + rows.max()).item<double>() / 2, 128, 2) << "at the point, scaled";
  EXPECT_NEAR((cols.min() + cols.max()).item<double>() / 2, 192, 2);
}

// A pictures folder is owned as a run folder: its earlier pictures are replaced, anything else
// is refused and left alone.
TEST(Picture, APicturesFolderIsOwned) {
  namespace fs = std::filesystem;
  const std::string dir = testing::make_temp_dir("sd-pictures");
  prepare_pictures_folder(dir + "/vis", "--vis");
  write_png(dir + "/vis/old.png", at::zeros({2, 2, 3}, at::kByte));
  prepare_pictures_folder(dir + "/vis", "--vis");
  EXPECT_FALSE(fs::exists(dir + "/vis/old.png")) << "an earlier picture stays beside new ones";
  write_file_atomic(dir + "/vis/notes.txt", "mine");
  EXPECT_PRED2(testing::contains,
               testing::error_of([&] { prepare_pictures_folder(dir + "/vis", "--vis"); }),
               "--vis '" + dir + "/vis' holds files samdistill did not write there (" + dir +
                   "/vis/notes.txt)");
  fs::create_directories(dir + "/photos");
  write_png(dir + "/photos/holiday.png", at::zeros({2, 2, 3}, at::kByte));
  EXPECT_THROW(prepare_pictures_folder(dir + "/photos", "--vis"), Error);
  EXPECT_TRUE(fs::exists(dir + "/photos/holiday.png"));
  fs::remove_all(dir);
}

// PNGs are deflated: a flat picture weighs little; a mask is one grey channel.
TEST(Picture, PngsAreCompressedAndMasksGrey) {
  const std::string flat = png_bytes(at::full({400, 600, 3}, 77, at::kByte), "flat");
  EXPECT_LT(flat.size(), 4000u) << "720 KB of pixels";
  const std::string mask = png_bytes(at::zeros({400, 600}, at::kByte), "mask");
  EXPECT_LT(mask.size(), 2000u);
  EXPECT_EQ(int(mask[25]), 0) << "colour type grey";
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
