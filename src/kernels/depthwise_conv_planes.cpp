#include "kernels/depthwise_conv_planes.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <vector>

#include "kernels/avx2.h"

namespace sd::kernels {
namespace {

using Taps = std::array<float, 9>;  // tap 3 di + dj

// A plane inside a border of zeros: row(r) for r in [-1, height] is the plane's row r, with a zero
// before it and zeros after it, so that whole registers read from row(r) + j - 1 + dj for
// j < width are inside the buffer and past the row see zeros.
class BorderedPlane {
 public:
  BorderedPlane(int64_t height, int64_t width)
      : height_(height),
        width_(width),
        stride_((width + 2 + kLanes - 1) / kLanes * kLanes + kLanes),
        values_((height + 2) * stride_, 0.0f) {}

  void fill(const float* plane) {  // the border stays zero
    for (int64_t r = 0; r < height_; ++r)
      std::copy(plane + r * width_, plane + (r + 1) * width_,
                values_.data() + (r + 1) * stride_ + 1);
  }
  const float* row(int64_t r) const { return values_.data() + (r + 1) * stride_ + 1; }

 private:
  int64_t height_, width_, stride_;
  std::vector<float> values_;
};

// out (H x W) = the bordered plane filtered by `taps`.
SD_AVX2 void filter_plane(const BorderedPlane& in, const Taps& taps, float* out, int64_t height,
                          int64_t width) {
  __m256 w[9];
  for (int t = 0; t < 9; ++t) w[t] = _mm256_set1_ps(taps[t]);
  for (int64_t i = 0; i < height; ++i)
    for (int64_t j = 0; j < width; j += kLanes) {
      __m256 acc = _mm256_setzero_ps();
      for (int di = 0; di < 3; ++di) {
        const float* p = in.row(i + di - 1) + j - 1;
        for (int dj = 0; dj < 3; ++dj)
          acc = _mm256_fmadd_ps(w[3 * di + dj], _mm256_loadu_ps(p + dj), acc);
      }
      store(out + i * width, j, width, acc);
    }
}

// sums[3 di + dj] += Σ grad[i][j] · x[i + di - 1][j + dj - 1] over the plane, each row's in float.
SD_AVX2 void add_weight_gradient(const BorderedPlane& x, const float* grad, int64_t height,
                                 int64_t width, double* sums) {
  for (int64_t i = 0; i < height; ++i) {
    __m256 acc[9];
    for (__m256& a : acc) a = _mm256_setzero_ps();
    for (int64_t j = 0; j < width; j += kLanes) {
      const __m256 g = load(grad + i * width, j, width);  // zero past the row
      for (int di = 0; di < 3; ++di) {
        const float* p = x.row(i + di - 1) + j - 1;
        for (int dj = 0; dj < 3; ++dj)
          acc[3 * di + dj] = _mm256_fmadd_ps(g, _mm256_loadu_ps(p + dj), acc[3 * di + dj]);
      }
    }
    for (int t = 0; t < 9; ++t) sums[t] += double(horizontal_sum(acc[t]));
  }
}

Taps taps_of(const float* weight, int64_t channel, bool flipped) {
  Taps taps;
  for (int t = 0; t < 9; ++t) taps[flipped ? 8 - t : t] = weight[9 * channel + t];
  return taps;
}

}  // namespace

void filter_planes(const float* x, const float* weight, float* out, const PlaneGrid& g) {
  const int64_t pixels = g.height * g.width;
  at::parallel_for(0, g.batch * g.channels, 1, [&](int64_t begin, int64_t end) {
    BorderedPlane plane(g.height, g.width);
    for (int64_t p = begin; p < end; ++p) {
      plane.fill(x + p * pixels);
      filter_plane(plane, taps_of(weight, p % g.channels, false), out + p * pixels, g.height,
                   g.width);
    }
  });
}

void filter_planes_backward(const float* x, const float* weight, const float* grad, float* dx,
                            float* dweight, const PlaneGrid& g) {
  const int64_t pixels = g.height * g.width, planes = g.batch * g.channels;
  std::vector<double> sums(planes * 9, 0.0);
  at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
    BorderedPlane grad_plane(g.height, g.width), x_plane(g.height, g.width);
    for (int64_t p = begin; p < end; ++p) {
      grad_plane.fill(grad + p * pixels);
      filter_plane(grad_plane, taps_of(weight, p % g.channels, true), dx + p * pixels, g.height,
                   g.width);
      x_plane.fill(x + p * pixels);
      add_weight_gradient(x_plane, grad + p * pixels, g.height, g.width, sums.data() + p * 9);
    }
  });
  for (int64_t c = 0; c < g.channels; ++c)
    for (int t = 0; t < 9; ++t) {
      double sum = 0;
      for (int64_t n = 0; n < g.batch; ++n) sum += sums[(n * g.channels + c) * 9 + t];
      dweight[9 * c + t] = float(sum);
    }
}

}  // namespace sd::kernels
