#include "kernels/batch_norm_planes.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <functional>

#include "kernels/avx2.h"

namespace sd::kernels {
namespace {

constexpr int64_t kSegment = 16384;  // values: 64 KB, in a core's L2 cache for a second pass

// The lanes of a plane's block at i of n: all 8, or the tail's.
SD_AVX2 inline __m256i block_lanes(int64_t i, int64_t n) {
  return i + kLanes <= n ? _mm256_set1_epi32(-1) : first_lanes(n - i);
}

// acc += the 8 floats of v, in double.
SD_AVX2 inline void add_to_doubles(__m256 v, __m256d& low, __m256d& high) {
  low = _mm256_add_pd(low, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  high = _mm256_add_pd(high, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

struct Moments {
  double sum, squares;  // the sum; the squared deviations about the segment's own mean
  int64_t n;
};

// A segment's sum in double; then its deviations from its float mean and their squares (in
// float, as ATen, summed in double): Σ (x - float mean)² less n (mean - float mean)².
SD_AVX2 Moments segment_moments(const float* x, int64_t n) {
  __m256d low = _mm256_setzero_pd(), high = low;
  for (int64_t i = 0; i < n; i += kLanes) add_to_doubles(load(x, i, n), low, high);
  const double sum = horizontal_sum(_mm256_add_pd(low, high));
  const __m256 mean = _mm256_set1_ps(float(sum / double(n)));
  __m256d square_low = _mm256_setzero_pd(), square_high = square_low;
  __m256d deviation_low = square_low, deviation_high = square_low;
  for (int64_t i = 0; i < n; i += kLanes) {
    const __m256 d =
        _mm256_and_ps(_mm256_sub_ps(load(x, i, n), mean), _mm256_castsi256_ps(block_lanes(i, n)));
    add_to_doubles(_mm256_mul_ps(d, d), square_low, square_high);
    add_to_doubles(d, deviation_low, deviation_high);
  }
  const double squares = horizontal_sum(_mm256_add_pd(square_low, square_high));
  const double deviations = horizontal_sum(_mm256_add_pd(deviation_low, deviation_high));
  return {sum, squares - deviations * deviations / double(n), n};
}

// Runs `channel(c)` for every channel, in parallel.
void for_each_channel(const Planes& p, const std::function<void(int64_t)>& channel) {
  at::parallel_for(0, p.channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) channel(c);
  });
}

// Where sample n's plane of channel c starts.
int64_t plane(const Planes& p, int64_t c, int64_t n) { return (n * p.channels + c) * p.pixels; }

SD_AVX2 void normalise_plane(const float* x, float* out, int64_t n, float alpha, float beta,
                             bool gelu) {
  const __m256 a = _mm256_set1_ps(alpha), b = _mm256_set1_ps(beta);
  for (int64_t i = 0; i < n; i += kLanes) {
    __m256 y = _mm256_add_ps(_mm256_mul_ps(load(x, i, n), a), b);
    if (gelu) y = gelu8(y);
    store(out, i, n, y);
  }
}

// Σ dy and Σ (x - mean) · dy over one plane, in float.
SD_AVX2 std::pair<float, float> plane_sums(const float* x, const float* grad, float* dy, int64_t n,
                                           float mean, float alpha, float beta, bool gelu) {
  const __m256 m = _mm256_set1_ps(mean), a = _mm256_set1_ps(alpha), b = _mm256_set1_ps(beta);
  __m256 sum = _mm256_setzero_ps(), dot = sum;
  for (int64_t i = 0; i < n; i += kLanes) {
    const __m256 xv = load(x, i, n);
    __m256 g = load(grad, i, n);
    if (gelu) {
      g = _mm256_mul_ps(g, gelu_derivative8(_mm256_add_ps(_mm256_mul_ps(xv, a), b)));
      store(dy, i, n, g);
    }
    const __m256 d = _mm256_and_ps(_mm256_sub_ps(xv, m), _mm256_castsi256_ps(block_lanes(i, n)));
    sum = _mm256_add_ps(sum, g);
    dot = _mm256_fmadd_ps(d, g, dot);
  }
  return {horizontal_sum(sum), horizontal_sum(dot)};
}

// In ATen's order of operations, as the channels-last pass.
SD_AVX2 void input_gradient_plane(const float* x, const float* dy, float* dx, int64_t n, float mean,
                                  float dy_mean, float k, float invstd, float weight) {
  const __m256 m = _mm256_set1_ps(mean), dm = _mm256_set1_ps(dy_mean), kv = _mm256_set1_ps(k);
  const __m256 is = _mm256_set1_ps(invstd), w = _mm256_set1_ps(weight);
  for (int64_t i = 0; i < n; i += kLanes) {
    const __m256 shift = _mm256_mul_ps(_mm256_sub_ps(load(x, i, n), m), kv);
    const __m256 d = _mm256_sub_ps(_mm256_sub_ps(load(dy, i, n), dm), shift);
    store(dx, i, n, _mm256_mul_ps(_mm256_mul_ps(d, is), w));
  }
}

}  // namespace

std::vector<double> plane_moments(const float* x, const Planes& p, float* mean) {
  std::vector<double> squares(p.channels);
  for_each_channel(p, [&](int64_t c) {
    std::vector<Moments> parts;
    double total = 0;
    for (int64_t n = 0; n < p.batch; ++n)
      for (int64_t s = 0; s < p.pixels; s += kSegment) {
        parts.push_back(segment_moments(x + plane(p, c, n) + s, std::min(kSegment, p.pixels - s)));
        total += parts.back().sum;
      }
    const double exact_mean = total / double(p.count());
    mean[c] = float(exact_mean);
    double sum_of_squares = 0;
    for (const Moments& part : parts) {
      const double shift = part.sum / double(part.n) - exact_mean;
      sum_of_squares += part.squares + double(part.n) * shift * shift;
    }
    squares[c] = sum_of_squares;
  });
  return squares;
}

void normalise_planes(const float* x, float* out, const Planes& p, const float* alpha,
                      const float* beta, bool gelu) {
  for_each_channel(p, [&](int64_t c) {
    for (int64_t n = 0; n < p.batch; ++n) {
      const int64_t at = plane(p, c, n);
      normalise_plane(x + at, out + at, p.pixels, alpha[c], beta[c], gelu);
    }
  });
}

std::pair<std::vector<double>, std::vector<double>> plane_gradient_sums(const float* x,
                                                                        const float* grad,
                                                                        float* dy, const Planes& p,
                                                                        const GradientSums& v) {
  std::vector<double> sum(p.channels, 0.0), dot(p.channels, 0.0);
  for_each_channel(p, [&](int64_t c) {
    for (int64_t n = 0; n < p.batch; ++n) {
      const int64_t at = plane(p, c, n);
      const auto [s, d] = plane_sums(x + at, grad + at, dy + at, p.pixels, v.mean[c], v.alpha[c],
                                     v.beta[c], v.gelu);
      sum[c] += s;
      dot[c] += d;
    }
  });
  return {sum, dot};
}

void plane_input_gradient(const float* x, const float* dy, float* dx, const Planes& p,
                          const InputGradient& v) {
  for_each_channel(p, [&](int64_t c) {
    for (int64_t n = 0; n < p.batch; ++n) {
      const int64_t at = plane(p, c, n);
      input_gradient_plane(x + at, dy + at, dx + at, p.pixels, v.mean[c], v.dy_mean[c], v.k[c],
                           v.invstd[c], v.weight[c]);
    }
  });
}

}  // namespace sd::kernels
