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

constexpr int kW = 800, kH = 400, kTextScale = 2;
constexpr int kLeft = 80, kRight = 30, kTop = 40, kBottom = 56;  // the plot area's margins

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
  int width(const std::string& s) const { return int(text_width(s.size(), kTextScale)); }
};

std::string short_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g", v);
  return buf;
}

// Round values (1, 2 or 5 times a power of ten apart) from `lo` to `hi`, about `count` of them.
std::vector<double> linear_ticks(double lo, double hi, int count) {
  const double raw = (hi - lo) / count, power = std::pow(10, std::floor(std::log10(raw)));
  double step = power;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * power >= raw) {
      step = m * power;
      break;
    }
  std::vector<double> out;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push_back(v);
  return out;
}

// Losses on a log axis from 10^lo to 10^hi: 1, 2 and 5 times the powers of ten inside (only
// the powers when there are many), else the ends.
std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> out;
  const bool many = hi - lo > 2;
  for (double e = std::floor(lo); e <= std::ceil(hi); ++e)
    for (double m : many ? std::vector<double>{1} : std::vector<double>{1, 2, 5}) {
      const double v = m * std::pow(10, e);
      if (std::log10(v) >= lo - 1e-9 && std::log10(v) <= hi + 1e-9) out.push_back(v);
    }
  if (out.size() < 2) out = {std::pow(10, lo), std::pow(10, hi)};
  return out;
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
    return kLeft + static_cast<int>(std::lround((step - x_min) / std::max(1.0, x_max - x_min) *
                                                (kW - kLeft - kRight)));
  };
  auto py = [&](double loss) {
    return kH - kBottom -
           static_cast<int>(
               std::lround((std::log10(loss) - lo) / (hi - lo) * (kH - kTop - kBottom)));
  };

  Canvas c;
  const int glyph = int(kGlyphHeight) * kTextScale;
  for (double v : log_ticks(lo, hi)) {  // grid line, tick and value on the y axis
    const int y = py(v);
    c.line(kLeft + 1, y, kW - kRight, y, 225, 225, 225);
    c.line(kLeft - 5, y, kLeft, y, 0, 0, 0);
    const std::string label = short_number(v);
    c.text(kLeft - 8 - c.width(label), y - glyph / 2, label);
  }
  for (double v : linear_ticks(x_min, std::max(x_max, x_min + 1), 6)) {  // ... on the x axis
    const int x = px(v);
    c.line(x, kTop, x, kH - kBottom - 1, 225, 225, 225);
    c.line(x, kH - kBottom, x, kH - kBottom + 5, 0, 0, 0);
    const std::string label = short_number(v);
    c.text(x - c.width(label) / 2, kH - kBottom + 9, label);
  }
  c.line(kLeft, kTop, kLeft, kH - kBottom, 0, 0, 0);
  c.line(kLeft, kH - kBottom, kW - kRight, kH - kBottom, 0, 0, 0);
  for (size_t i = 1; i < points.size(); ++i)
    c.line(px(points[i - 1].first), py(points[i - 1].second), px(points[i].first),
           py(points[i].second), 31, 119, 180);
  c.text(kLeft, kTop - glyph - 10, "loss (log scale) per step");
  c.text(kLeft + (kW - kLeft - kRight - c.width("optimiser step")) / 2, kH - glyph - 6,
         "optimiser step");
  write_file_atomic(png_path, encode_png_rgb(c.rgb.data(), kW, kH));
}

}  // namespace sd::train
