#include "train/loss_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "util/atomic_file.h"
#include "util/font.h"
#include "util/png.h"

namespace sd::train {
namespace {

constexpr int kW = 800, kH = 400, kMargin = 40, kTextScale = 2;

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
  void text(int x, int y, const std::string& s) {
    draw_text(rgb.data(), kW, kH, x, y, s, kTextScale);
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
  // The highest loss above the y axis, the lowest below it, the last step at the right end;
  // the axes' titles beside the highest loss and under the middle of the x axis.
  const int top = kMargin - 4 - int(kGlyphHeight) * kTextScale, bottom = kH - kMargin + 4;
  const std::string highest = short_number(std::pow(10, hi)), last = short_number(x_max);
  c.text(4, top, highest);
  c.text(4 + int(text_width(highest.size() + 2, kTextScale)), top, "loss (log scale)");
  c.text(4, bottom, short_number(std::pow(10, lo)));
  c.text(kW - 4 - int(text_width(last.size(), kTextScale)), bottom, last);
  c.text((kW - int(text_width(4, kTextScale))) / 2, bottom, "step");
  write_file_atomic(png_path, encode_png_rgb(c.rgb.data(), kW, kH));
}

}  // namespace sd::train
