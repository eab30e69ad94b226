#include "data/pil_resize.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "util/error.h"
#include "util/vectorise.h"

// The horizontal pass of RGB images, whose 3-channel pixels do not vectorise as plain loops,
// has its own AVX2 version, picked at run time on CPUs that have it.
#if defined(__x86_64__) && defined(__GNUC__)
#define SD_AVX2 1
#include <immintrin.h>
#endif

namespace sd::data {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);

// For each output pixel: the first of the `taps` input pixels it reads and their fixed-point
// weights. Every window has the same length and lies inside the input; PIL's shorter windows
// are padded with zero weights, which add nothing.
struct Coefficients {
  int taps = 0;
  int stride = 0;  // taps, rounded up to 8: a whole AVX2 register per output pixel
  std::vector<int> first;
  std::vector<int32_t> weights;  // out_size x stride
  // The same weights (never negative) as high * 2^15 + low in 16 bits each, for vpmaddwd.
  std::vector<int16_t> low, high;
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
  const int ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  Coefficients c;
  c.taps = std::min(ksize, in_size);
  c.stride = (c.taps + 7) / 8 * 8;
  c.first.resize(out_size);
  c.weights.assign(static_cast<size_t>(out_size) * c.stride, 0);
  std::vector<double> k(ksize);
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
    const int first = std::min(xmin, in_size - c.taps);
    for (int x = 0; x < xmax; ++x) {
      const double w = ww != 0.0 ? k[x] / ww : k[x];
      c.weights[static_cast<size_t>(xx) * c.stride + xmin - first + x] = static_cast<int32_t>(
          w < 0 ? -0.5 + w * (1 << kPrecisionBits) : 0.5 + w * (1 << kPrecisionBits));
    }
    c.first[xx] = first;
  }
  c.low.resize(c.weights.size());
  c.high.resize(c.weights.size());
  for (size_t i = 0; i < c.weights.size(); ++i) {
    c.low[i] = static_cast<int16_t>(c.weights[i] & 0x7fff);
    c.high[i] = static_cast<int16_t>(c.weights[i] >> 15);
  }
  return c;
}

// PIL's clip8: the rounded fixed-point sum as a byte.
inline uint8_t clip8(int32_t v) {
  return static_cast<uint8_t>(std::min(std::max(v >> kPrecisionBits, 0), 255));
}

// Output pixels [from, to) of one input row (in_w x C) resampled along x. TAPS > 0 fixes the
// window length at compile time, which lets the compiler unroll it; 0 reads it from `c`.
template <int C, int TAPS>
SD_VECTORISED void horizontal_pixels(const uint8_t* __restrict line, const Coefficients& c,
                                     int from, int to, uint8_t* __restrict out) {
  const int taps = TAPS > 0 ? TAPS : c.taps;
  for (int xx = from; xx < to; ++xx) {
    const int32_t* k = &c.weights[static_cast<size_t>(xx) * c.stride];
    const uint8_t* src = line + static_cast<size_t>(c.first[xx]) * C;
    int32_t ss[C];
    for (int ch = 0; ch < C; ++ch) ss[ch] = kHalf;
    for (int x = 0; x < taps; ++x)
      for (int ch = 0; ch < C; ++ch) ss[ch] += src[x * C + ch] * k[x];
    for (int ch = 0; ch < C; ++ch) out[xx * C + ch] = clip8(ss[ch]);
  }
}

template <int C, int TAPS>
void horizontal_row(const uint8_t* line, const Coefficients& c, int, int out_w, uint8_t* out) {
  horizontal_pixels<C, TAPS>(line, c, 0, out_w, out);
}

#ifdef SD_AVX2
// horizontal_row<3, TAPS <= 5> with AVX2, two output pixels at a time, one per 128-bit half:
// a 16-byte load holds the 5 RGB input pixels, shuffled into 16-bit R, G and B lanes; each
// product pixel x weight is split as pixel x high x 2^15 + pixel x low (vpmaddwd, exact in 32
// bits) and the lanes of each channel summed. The last few output pixels, whose load would
// pass the row's end, go through the plain version.
// One channel of `pixels` (picked by the `channel` shuffle) times the weights, in pairs of lanes.
__attribute__((target("avx2"))) inline __m256i weigh(__m256i pixels, __m256i channel, __m256i low,
                                                     __m256i high) {
  const __m256i v = _mm256_shuffle_epi8(pixels, channel);
  return _mm256_add_epi32(_mm256_slli_epi32(_mm256_madd_epi16(v, high), 15),
                          _mm256_madd_epi16(v, low));
}

__attribute__((target("avx2"))) void horizontal_row_rgb_avx2(const uint8_t* line,
                                                             const Coefficients& c, int in_w,
                                                             int out_w, uint8_t* out) {
  const __m256i red = _mm256_broadcastsi128_si256(
      _mm_setr_epi8(0, -1, 3, -1, 6, -1, 9, -1, 12, -1, -1, -1, -1, -1, -1, -1));
  const __m256i green = _mm256_broadcastsi128_si256(
      _mm_setr_epi8(1, -1, 4, -1, 7, -1, 10, -1, 13, -1, -1, -1, -1, -1, -1, -1));
  const __m256i blue = _mm256_broadcastsi128_si256(
      _mm_setr_epi8(2, -1, 5, -1, 8, -1, 11, -1, 14, -1, -1, -1, -1, -1, -1, -1));
  const __m256i half = _mm256_set1_epi32(kHalf);
  int xx = 0;
  for (; xx + 1 < out_w && c.first[xx + 1] * 3 + 16 <= in_w * 3; xx += 2) {
    const __m256i px = _mm256_inserti128_si256(
        _mm256_castsi128_si256(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(line + c.first[xx] * 3))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(line + c.first[xx + 1] * 3)), 1);
    const __m256i low =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&c.low[static_cast<size_t>(xx) * 8]));
    const __m256i high =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&c.high[static_cast<size_t>(xx) * 8]));
    const __m256i r = weigh(px, red, low, high), g = weigh(px, green, low, high),
                  b = weigh(px, blue, low, high);
    // Per 128-bit half: the (r, g, b, b) sums of its output pixel.
    __m256i rgb = _mm256_hadd_epi32(_mm256_hadd_epi32(r, g), _mm256_hadd_epi32(b, b));
    rgb = _mm256_srai_epi32(_mm256_add_epi32(rgb, half), kPrecisionBits);
    rgb = _mm256_packus_epi16(_mm256_packs_epi32(rgb, rgb), rgb);
    const uint32_t first = static_cast<uint32_t>(_mm256_cvtsi256_si32(rgb));
    const uint32_t second = static_cast<uint32_t>(_mm256_extract_epi32(rgb, 4));
    std::memcpy(out + xx * 3, &first, 3);
    std::memcpy(out + xx * 3 + 3, &second, 3);
  }
  horizontal_pixels<3, 0>(line, c, xx, out_w, out);
}
#endif

using HorizontalRow = void (*)(const uint8_t* line, const Coefficients& c, int in_w, int out_w,
                               uint8_t* out);

template <int C>
HorizontalRow horizontal_for(int taps) {
  switch (taps) {
    case 3:
      return horizontal_row<C, 3>;  // upscaling
    case 5:
      return horizontal_row<C, 5>;  // downscaling by up to 2
    case 7:
      return horizontal_row<C, 7>;  // by up to 3
    default:
      return horizontal_row<C, 0>;
  }
}

HorizontalRow horizontal_for(int channels, int taps) {
#ifdef SD_AVX2
  if (channels == 3 && taps <= 5 && __builtin_cpu_supports("avx2")) return horizontal_row_rgb_avx2;
#endif
  switch (channels) {
    case 1:
      return horizontal_for<1>(taps);
    case 2:
      return horizontal_for<2>(taps);
    case 3:
      return horizontal_for<3>(taps);
    default:
      return horizontal_for<4>(taps);
  }
}

// One output row: the `taps` rows weighted by `k`, summed per value (n values).
void vertical_row_any(const uint8_t* const* rows, const int32_t* k, int taps, size_t n,
                      uint8_t* out) {
  std::vector<int32_t> acc(n, kHalf);
  for (int y = 0; y < taps; ++y)
    for (size_t i = 0; i < n; ++i) acc[i] += rows[y][i] * k[y];
  for (size_t i = 0; i < n; ++i) out[i] = clip8(acc[i]);
}

// The same with TAPS known at compile time: one vectorised pass, no accumulator in memory.
template <int TAPS>
SD_VECTORISED void vertical_row(const uint8_t* const* rows, const int32_t* k, int, size_t n,
                                uint8_t* __restrict out) {
  const uint8_t* r[TAPS];
  int32_t w[TAPS];
  for (int y = 0; y < TAPS; ++y) {
    r[y] = rows[y];
    w[y] = k[y];
  }
  for (size_t i = 0; i < n; ++i) {
    int32_t sum = kHalf;
    for (int y = 0; y < TAPS; ++y) sum += r[y][i] * w[y];
    out[i] = clip8(sum);
  }
}

using VerticalRow = void (*)(const uint8_t* const*, const int32_t*, int, size_t, uint8_t*);

VerticalRow vertical_for(int taps) {
  switch (taps) {
    case 3:
      return vertical_row<3>;
    case 5:
      return vertical_row<5>;
    case 7:
      return vertical_row<7>;
    default:
      return vertical_row_any;
  }
}

void check(const at::Tensor& image, int out_h, int out_w) {
  if (image.dim() != 3 || image.scalar_type() != at::kByte || image.size(2) < 1 ||
      image.size(2) > 4)
    throw Error("pil_resize_bilinear: expected a uint8 HxWxC image (C 1..4), got " +
                c10::str(image.sizes()));
  if (out_h < 1 || out_w < 1)
    throw Error("pil_resize_bilinear: output size " + std::to_string(out_h) + "x" +
                std::to_string(out_w) + " is empty");
}

// Resizes row by row: each input row goes through the horizontal pass once, into a ring of
// the last `taps` rows (a few KiB that stay in cache), as soon as the vertical pass needs it.
// Output row y is written to out + y * out_stride and then handed to `row` when it is set.
void resize(const at::Tensor& image, int out_h, int out_w, uint8_t* out, size_t out_stride,
            const ResizedRow* row) {
  const at::Tensor in = image.contiguous();
  const int in_h = static_cast<int>(in.size(0)), in_w = static_cast<int>(in.size(1));
  const int channels = static_cast<int>(in.size(2));
  const uint8_t* src = in.data_ptr<uint8_t>();
  const size_t in_stride = static_cast<size_t>(in_w) * channels,
               mid_stride = static_cast<size_t>(out_w) * channels;

  const bool need_horizontal = out_w != in_w;
  const Coefficients ch = need_horizontal ? precompute(in_w, out_w) : Coefficients{};
  const HorizontalRow horizontal = horizontal_for(channels, ch.taps);
  // Without a vertical pass, one tap of weight 1.0 per output row: the row itself.
  Coefficients cv{1, 1, {}, {}, {}, {}};
  if (out_h != in_h) {
    cv = precompute(in_h, out_h);
  } else {
    for (int y = 0; y < out_h; ++y) cv.first.push_back(y);
    cv.weights.assign(out_h, 1 << kPrecisionBits);
  }

  std::vector<uint8_t> ring(need_horizontal ? cv.taps * mid_stride : 0);
  std::vector<const uint8_t*> rows(cv.taps);
  const VerticalRow vertical = vertical_for(cv.taps);
  int next_input_row = 0;  // the first input row not yet through the horizontal pass
  for (int yy = 0; yy < out_h; ++yy) {
    const int first = cv.first[yy];
    for (int y = 0; y < cv.taps; ++y) {
      const int input_row = first + y;
      if (!need_horizontal) {
        rows[y] = src + input_row * in_stride;
        continue;
      }
      uint8_t* slot = &ring[(input_row % cv.taps) * mid_stride];
      if (input_row >= next_input_row) {
        horizontal(src + input_row * in_stride, ch, in_w, out_w, slot);
        next_input_row = input_row + 1;
      }
      rows[y] = slot;
    }
    uint8_t* dst = out + yy * out_stride;
    vertical(rows.data(), &cv.weights[static_cast<size_t>(yy) * cv.stride], cv.taps, mid_stride,
             dst);
    if (row) (*row)(yy, dst);
  }
}

}  // namespace

at::Tensor pil_resize_bilinear(const at::Tensor& image, int out_height, int out_width) {
  check(image, out_height, out_width);
  at::Tensor out = at::empty({out_height, out_width, image.size(2)}, at::kByte);
  resize(image, out_height, out_width, out.data_ptr<uint8_t>(),
         static_cast<size_t>(out.size(1)) * out.size(2), nullptr);
  return out;
}

void pil_resize_bilinear_rows(const at::Tensor& image, int out_height, int out_width,
                              const ResizedRow& row) {
  check(image, out_height, out_width);
  std::vector<uint8_t> buffer(static_cast<size_t>(out_width) * image.size(2));
  resize(image, out_height, out_width, buffer.data(), 0, &row);
}

}  // namespace sd::data
