#include "train/loss_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "util/atomic_file.h"
#include "util/png.h"

namespace sd::train {
namespace {

constexpr int kW = 800, kH = 400, kMargin = 40;

// 3x5 glyphs, one row per 3-bit group (MSB = left column).
int glyph_row(char c, int row) {
  static const char* chars = "0123456789.-e";
  static const int rows[][5] = {{7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7},
                                {5, 5, 7, 1, 1}, {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1},
                                {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7}, {0, 0, 0, 0, 2}, {0, 0, 7, 0, 0},
                                {0, 7, 5, 6, 3}};
  const char* at = std::strchr(chars, c);
  return at && c ? rows[at - chars][row] : 0;
}

struct Canvas {
  std::vector<uint8_t> rgb = std::vector<uint8_t>(kW * kH * 3, 255);
  void dot(int x, int y, uint8_t r, uint8_t g, uint8_t b) {
    if (x < 0 || y < 0 || x >= kW || y >= kH) return;
    uint8_t* p = &rgb[(static_cast<size_t>(y) * kW + x) * 3];
    p[0] = r, p[1] = g, p[2] = b;
  }
  void line(int x0, int y0, int x1, int y1, uint8_t r, uint8_t g, uint8_t b) {
    int steps = std::max(std::abs(x1 - x0), std::abs(y1 - y0));
    for (int i = 0; i <= steps; ++i) {
      double t = steps ? static_cast<double>(i) / steps : 0;
      dot(static_cast<int>(std::lround(x0 + t * (x1 - x0))),
          static_cast<int>(std::lround(y0 + t * (y1 - y0))), r, g, b);
    }
  }
  void text(int x, int y, const std::string& s) {  // 2x scaled glyphs
    for (char c : s) {
      for (int row = 0; row < 5; ++row)
        for (int col = 0; col < 3; ++col)
          if (glyph_row(c, row) & (4 >> col))
            for (int d = 0; d < 4; ++d) dot(x + 2 * col + d % 2, y + 2 * row + d / 2, 0, 0, 0);
      x += 8;
    }
  }
};

std::string short_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g", v);
  return buf;
}

}  // namespace

void write_loss_plot(const std::string& metrics_jsonl, const std::string& png_path) {
  std::vector<std::pair<double, double>> points;  // (step, loss)
  std::ifstream in(metrics_jsonl);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("loss") || !j["loss"].is_number()) continue;
    double loss = j["loss"].get<double>();
    if (std::isfinite(loss) && loss > 0) points.emplace_back(j["step"].get<double>(), loss);
  }
  if (points.size() < 2) return;
  double x_max = points.back().first, x_min = points.front().first;
  double lo = std::log10(std::min_element(points.begin(), points.end(), [](auto a, auto b) {
                           return a.second < b.second;
                         })->second);
  double hi = std::log10(std::max_element(points.begin(), points.end(), [](auto a, auto b) {
                           return a.second < b.second;
                         })->second);
  if (hi - lo < 1e-9) hi = lo + 1;
  auto px = [&](double step) {
    return kMargin +
           static_cast<int>((step - x_min) / std::max(1.0, x_max - x_min) * (kW - 2 * kMargin));
  };
  auto py = [&](double loss) {
    return kH - kMargin -
           static_cast<int>((std::log10(loss) - lo) / (hi - lo) * (kH - 2 * kMargin));
  };

  Canvas c;
  c.line(kMargin, kMargin, kMargin, kH - kMargin, 0, 0, 0);
  c.line(kMargin, kH - kMargin, kW - kMargin, kH - kMargin, 0, 0, 0);
  for (size_t i = 1; i < points.size(); ++i)
    c.line(px(points[i - 1].first), py(points[i - 1].second), px(points[i].first),
           py(points[i].second), 31, 119, 180);
  c.text(4, kMargin - 12, short_number(std::pow(10, hi)));
  c.text(4, kH - kMargin + 4, short_number(std::pow(10, lo)));
  c.text(kW - kMargin - 40, kH - kMargin + 8, short_number(x_max));
  write_file_atomic(png_path, encode_png_rgb(c.rgb.data(), kW, kH));
}

}  // namespace sd::train
