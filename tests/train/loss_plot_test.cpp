#include "train/loss_plot.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
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

// The plot area spans x 80..770 and y 40..344; the losses run from 0.05 to 1 (log scale) and
// the steps from 1 to 20.
TEST(LossPlot, HasAxisTitlesTicksAndValues) {
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
  expect_text_at(plot, 80, 40 - 14 - 10, "loss (log scale) per step");
  expect_text_at(plot, 80 + (690 - text_width(14, 2)) / 2, 400 - 14 - 6, "optimiser step");
  auto y_of = [](double loss) {
    return 344 - std::lround((std::log10(loss) - std::log10(0.05)) / -std::log10(0.05) * 304);
  };
  for (const char* loss : {"0.05", "0.1", "0.2", "0.5", "1"}) {  // right-aligned, left of the axis
    const int64_t y = y_of(std::stod(loss));
    expect_text_at(plot, 72 - text_width(std::string(loss).size(), 2), y - 7, loss);
    EXPECT_EQ(plot[y][77].sum().item<int64_t>(), 0) << "the tick of " << loss;
  }
  for (int step : {5, 10, 15, 20}) {  // centred under their ticks
    const int64_t x = 80 + std::lround((step - 1) / 19.0 * 690);
    const std::string label = std::to_string(step);
    expect_text_at(plot, x - text_width(label.size(), 2) / 2, 344 + 9, label);
    EXPECT_EQ(plot[347][x].sum().item<int64_t>(), 0) << "the tick of step " << step;
  }
  // Kept for people to look at, as the eval page's screenshot.
  const std::string artifacts =
      std::filesystem::path(testing::binary_path()).parent_path().string() + "/test-artifacts";
  std::filesystem::create_directories(artifacts);
  std::filesystem::copy_file(dir + "/loss.png", artifacts + "/loss_plot.png",
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sd::train
