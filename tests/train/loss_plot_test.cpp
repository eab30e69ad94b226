#include "train/loss_plot.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "common/fixtures.h"
#include "data/image.h"
#include "util/atomic_file.h"
#include "util/font.h"

namespace sd::train {
namespace {

// Every ink pixel of `text` drawn at (x, y) at scale 2 is black in the 800x400 plot.
void expect_text_at(const at::Tensor& plot, int64_t x, int64_t y, const std::string& text) {
  std::vector<uint8_t> ink(800 * 400 * 3, 255);
  draw_text(ink.data(), 800, 400, x, y, text, 2);
  int64_t inked = 0, black = 0;
  for (int64_t row = 0; row < 400; ++row)
    for (int64_t col = 0; col < 800; ++col) {
      if (ink[size_t(row * 800 + col) * 3] != 0) continue;
      ++inked;
      black += plot[row][col].sum().item<int64_t>() == 0;
    }
  EXPECT_GT(inked, 0);
  EXPECT_EQ(black, inked) << "'" << text << "' is not drawn at (" << x << ", " << y << ")";
}

TEST(LossPlot, HasAxisTitles) {
  if (!data::image_decoding_available()) GTEST_SKIP() << "built without OpenCV";
  const std::string dir = testing::make_temp_dir("sd-loss-plot");
  {
    std::ofstream metrics(dir + "/metrics.jsonl");
    for (int step = 1; step <= 20; ++step)
      metrics << "{\"step\": " << step << ", \"loss\": " << 1.0 / step << "}\n";
  }
  write_loss_plot(dir + "/metrics.jsonl", dir + "/loss.png");
  const at::Tensor plot =
      data::default_image_decoder()(read_file(dir + "/loss.png"), dir + "/loss.png");
  ASSERT_EQ(plot.sizes(), (at::IntArrayRef{400, 800, 3}));
  // "1" is the highest loss, at the top left; the title follows two glyphs later.
  expect_text_at(plot, 4 + text_width(3, 2), 40 - 4 - 14, "loss (log scale)");
  expect_text_at(plot, (800 - text_width(4, 2)) / 2, 400 - 40 + 4, "step");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sd::train
