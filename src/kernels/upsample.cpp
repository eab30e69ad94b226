#include "kernels/upsample.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/autograd.h"

namespace sd::kernels {
namespace {

// Output index i reads inputs first[i] and second[i] with weights w_first[i], w_second[i],
// computed as ATen's compute_source_index_and_lambda does on CPUs: the scale in float, the
// weights in float, the source coordinate in the precision of the linked ATen.
struct Taps {
  std::vector<int64_t> first, second;
  std::vector<float> w_first, w_second;
};

// LibTorch 1.13 computes the source coordinate in double (acc_type); 2.x in float (opmath_t),
// as one fused multiply-add where its kernels are built for CPUs that have one.
enum class Coordinates { in_double, in_float, fused };

template <typename Real>
void add_tap(Taps& t, Real real, int64_t in) {
  real = std::max(real, Real(0));  // ATen's linear modes clamp at 0
  const auto index = std::min(static_cast<int64_t>(real), in - 1);
  const auto lambda = static_cast<float>(std::clamp(real - Real(index), Real(0), Real(1)));
  t.first.push_back(index);
  t.second.push_back(index + (index < in - 1 ? 1 : 0));
  t.w_first.push_back(1.0f - lambda);
  t.w_second.push_back(lambda);
}

void add_tap(Taps& t, Coordinates c, float scale, int64_t i, int64_t in) {
  if (c == Coordinates::in_double) return add_tap(t, double(scale) * (double(i) + 0.5) - 0.5, in);
  const float half = float(i) + 0.5f;
  add_tap(t, c == Coordinates::fused ? std::fma(scale, half, -0.5f) : scale * half - 0.5f, in);
}

// The linked ATen's coordinates: found once by upsampling a row of alternating 0 and 1 (each
// output is then exactly one of its two weights) at a scale where the three ways give
// different weights, and keeping the way whose weights it used.
Coordinates aten_coordinates() {
  static const Coordinates found = [] {
    constexpr int64_t in = 683, out = 1200;
    at::NoGradGuard no_grad;
    const at::Tensor row =
        at::arange(in, at::kLong).remainder(2).to(at::kFloat).view({1, 1, 1, in});
    const at::Tensor up =
        at::upsample_bilinear2d(row, {1, out}, /*align_corners=*/false).contiguous();
    const float* got = up.data_ptr<float>();
    const float scale = static_cast<float>(in) / out;
    auto misses = [&](Coordinates c) {
      Taps t;
      int64_t n = 0;
      for (int64_t i = 0; i < out; ++i) {
        add_tap(t, c, scale, i, in);
        n +=
            got[i] != float(t.first[i] % 2) * t.w_first[i] + float(t.second[i] % 2) * t.w_second[i];
      }
      return n;
    };
    Coordinates best = Coordinates::in_double;
    int64_t fewest = misses(best);
    for (Coordinates c : {Coordinates::in_float, Coordinates::fused})
      if (const int64_t n = misses(c); n < fewest) {
        best = c;
        fewest = n;
      }
    return best;
  }();
  return found;
}

Taps linear_taps(int64_t in, int64_t out, int64_t keep) {
  Taps t;
  const float scale = static_cast<float>(in) / out;
  const Coordinates c = in != out ? aten_coordinates() : Coordinates::in_double;
  for (int64_t i = 0; i < keep; ++i) {
    if (in == out) {
      t.first.push_back(i);
      t.second.push_back(i);
      t.w_first.push_back(1.0f);
      t.w_second.push_back(0.0f);
    } else {
      add_tap(t, c, scale, i, in);
    }
  }
  return t;
}

// Where the compiler may use wider vectors than the x86-64 baseline, a copy per instruction set,
// chosen when the program loads.
#if defined(__x86_64__) && defined(__GNUC__)
#define SD_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SD_VECTOR_CLONES
#endif

// dst[j] = a[ia[j]] * wa[j] + a[ib[j]] * wb[j]
SD_VECTOR_CLONES void blend_gathered(const float* __restrict a, const int64_t* __restrict ia,
                                     const int64_t* __restrict ib, const float* __restrict wa,
                                     const float* __restrict wb, float* __restrict dst, int64_t n) {
  for (int64_t j = 0; j < n; ++j) dst[j] = a[ia[j]] * wa[j] + a[ib[j]] * wb[j];
}

// dst[j] = a[j] * wa + b[j] * wb
SD_VECTOR_CLONES void blend_rows(const float* __restrict a, const float* __restrict b, float wa,
                                 float wb, float* __restrict dst, int64_t n) {
  for (int64_t j = 0; j < n; ++j) dst[j] = a[j] * wa + b[j] * wb;
}

bool separable_applies(const at::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 4 && x.stride(3) == 1 &&
         !autograd_records(x);
}

}  // namespace

at::Tensor upsample_bilinear(const at::Tensor& x, Size2 size, Size2 keep) {
  if (!separable_applies(x))
    return at::upsample_bilinear2d(x, {size[0], size[1]}, /*align_corners=*/false)
        .slice(2, 0, keep[0])
        .slice(3, 0, keep[1]);
  const int64_t channels = x.size(1), planes = x.size(0) * channels;
  const int64_t in_h = x.size(2), in_w = x.size(3), out_h = keep[0], out_w = keep[1];
  const Taps rows = linear_taps(in_h, size[0], out_h), cols = linear_taps(in_w, size[1], out_w);
  const int64_t used_h = out_h == 0 ? 0 : rows.second.back() + 1;  // input rows read
  // Pass 1, along each used input row: blend[p][r][j] = x[r][first] * w_first + x[r][second] *
  // w_second. Pass 2, down the columns: out[p][i][j] = blend[first] * w_first + blend[second] *
  // w_second. This is ATen's order (width inside, height outside), so the sums round alike.
  at::Tensor blend = at::empty({planes, used_h, out_w}, x.options());
  at::Tensor out = at::empty({x.size(0), channels, out_h, out_w}, x.options());
  const float* src = x.data_ptr<float>();
  float* mid = blend.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const int64_t s0 = x.stride(0), s1 = x.stride(1), s2 = x.stride(2);
  at::parallel_for(0, planes * used_h, 16, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const int64_t p = k / used_h, r = k % used_h;
      const float* in = src + (p / channels) * s0 + (p % channels) * s1 + r * s2;
      blend_gathered(in, cols.first.data(), cols.second.data(), cols.w_first.data(),
                     cols.w_second.data(), mid + k * out_w, out_w);
    }
  });
  at::parallel_for(0, planes * out_h, 16, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const int64_t p = k / out_h, i = k % out_h;
      const float* a = mid + (p * used_h + rows.first[i]) * out_w;
      const float* b = mid + (p * used_h + rows.second[i]) * out_w;
      blend_rows(a, b, rows.w_first[i], rows.w_second[i], dst + k * out_w, out_w);
    }
  });
  return out;
}

}  // namespace sd::kernels
