#include "data/pil_resize.h"

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "util/error.h"

namespace sd::data {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

// For each output pixel: the first input pixel it reads, how many, and their fixed-point weights.
struct Coefficients {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weights;  // out_size x ksize
};

double triangle(double x) {
  x = std::abs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// PIL's precompute_coeffs + normalize_coeffs_8bpc for the box [0, in_size).
Coefficients precompute(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 1.0 * filterscale;
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.weights.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[x] = triangle((x + xmin - center + 0.5) * ss);
      ww += k[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double w = ww != 0.0 ? k[x] / ww : k[x];
      c.weights[static_cast<size_t>(xx) * c.ksize + x] =
          static_cast<int32_t>(w < 0 ? -0.5 + w * (1 << kPrecisionBits) : 0.5 + w * (1 << kPrecisionBits));
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  if (v >= (255 << kPrecisionBits)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> kPrecisionBits);
}

// Rows [row0, row0 + rows) of `in` (in_w x C) resampled along x into `out` (rows x out_w x C).
template <int C>
void horizontal(const uint8_t* in, int in_w, int row0, int rows, const Coefficients& c, int out_w,
                uint8_t* out) {
  for (int y = 0; y < rows; ++y) {
    const uint8_t* line = in + static_cast<size_t>(row0 + y) * in_w * C;
    uint8_t* dst = out + static_cast<size_t>(y) * out_w * C;
    for (int xx = 0; xx < out_w; ++xx) {
      const int32_t* k = &c.weights[static_cast<size_t>(xx) * c.ksize];
      const uint8_t* src = line + static_cast<size_t>(c.first[xx]) * C;
      int32_t ss[C];
      for (int ch = 0; ch < C; ++ch) ss[ch] = 1 << (kPrecisionBits - 1);
      for (int x = 0; x < c.count[xx]; ++x)
        for (int ch = 0; ch < C; ++ch) ss[ch] += src[x * C + ch] * k[x];
      for (int ch = 0; ch < C; ++ch) dst[xx * C + ch] = clip8(ss[ch]);
    }
  }
}

// `in` (in_h x width x C, first row = input row `row0`) resampled along y into `out`.
void vertical(const uint8_t* in, int width, int row0, int channels, const Coefficients& c, int out_h,
              uint8_t* out) {
  const size_t stride = static_cast<size_t>(width) * channels;
  std::vector<int32_t> acc(stride);
  for (int yy = 0; yy < out_h; ++yy) {
    const int32_t* k = &c.weights[static_cast<size_t>(yy) * c.ksize];
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    for (int y = 0; y < c.count[yy]; ++y) {
      const uint8_t* src = in + static_cast<size_t>(c.first[yy] - row0 + y) * stride;
      const int32_t w = k[y];
      for (size_t i = 0; i < stride; ++i) acc[i] += src[i] * w;
    }
    uint8_t* dst = out + yy * stride;
    for (size_t i = 0; i < stride; ++i) dst[i] = clip8(acc[i]);
  }
}

}  // namespace

at::Tensor pil_resize_bilinear(const at::Tensor& image, int out_height, int out_width) {
  if (image.dim() != 3 || image.scalar_type() != at::kByte || image.size(2) < 1 || image.size(2) > 4)
    throw Error("pil_resize_bilinear: expected a uint8 HxWxC image (C 1..4), got " +
                c10::str(image.sizes()));
  if (out_height < 1 || out_width < 1)
    throw Error("pil_resize_bilinear: output size " + std::to_string(out_height) + "x" +
                std::to_string(out_width) + " is empty");
  at::Tensor in = image.contiguous();
  const int in_h = static_cast<int>(in.size(0)), in_w = static_cast<int>(in.size(1));
  const int channels = static_cast<int>(in.size(2));
  const bool need_horizontal = out_width != in_w;
  const bool need_vertical = out_height != in_h;
  if (!need_horizontal && !need_vertical) return in.clone();

  const Coefficients cv = precompute(in_h, out_height);
  // The input rows the vertical pass reads: only those go through the horizontal pass.
  const int row0 = need_vertical ? cv.first.front() : 0;
  const int row_end = need_vertical ? cv.first.back() + cv.count.back() : in_h;
  at::Tensor mid = in;
  int mid_row0 = 0;
  if (need_horizontal) {
    const Coefficients ch = precompute(in_w, out_width);
    mid = at::empty({row_end - row0, out_width, channels}, at::kByte);
    auto pass = channels == 1 ? horizontal<1> : channels == 2 ? horizontal<2> : channels == 3 ? horizontal<3> : horizontal<4>;
    pass(in.data_ptr<uint8_t>(), in_w, row0, row_end - row0, ch, out_width, mid.data_ptr<uint8_t>());
    mid_row0 = row0;
  }
  if (!need_vertical) return mid;
  at::Tensor out = at::empty({out_height, out_width, channels}, at::kByte);
  vertical(mid.data_ptr<uint8_t>(), out_width, mid_row0, channels, cv, out_height, out.data_ptr<uint8_t>());
  return out;
}

}  // namespace sd::data
