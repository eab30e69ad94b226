#include "kernels/mask_products.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <immintrin.h>

#include <algorithm>

#include "kernels/autograd.h"
#include "kernels/avx2.h"

namespace sd::kernels {
namespace {

constexpr int64_t kBlockPixels = 128;  // a task's pixels: 16 KB of the image at C = 32

// The eight sums of a0..a7's lanes, in order.
SD_AVX2 inline __m256 totals(const __m256 (&a)[kLanes]) {
  const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// out[m][p] for pixels [first, end) of one image (P pixels of C features) and its M rows of
// hyper; out is that image's M x P block.
SD_AVX2 void products(const float* image, const float* hyper, int64_t first, int64_t end, int64_t P,
                      int64_t M, int64_t C, float* out) {
  for (int64_t m = 0; m < M; ++m) {
    const float* h = hyper + m * C;
    float* o = out + m * P;
    int64_t p = first;
    for (; p + kLanes <= end; p += kLanes) {
      __m256 sums[kLanes];
      for (int64_t i = 0; i < kLanes; ++i) {
        const float* x = image + (p + i) * C;
        __m256 s = _mm256_mul_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(h));
        for (int64_t c = kLanes; c < C; c += kLanes)
          s = _mm256_fmadd_ps(_mm256_loadu_ps(x + c), _mm256_loadu_ps(h + c), s);
        sums[i] = s;
      }
      _mm256_storeu_ps(o + p, totals(sums));
    }
    for (; p < end; ++p) {
      float s = 0;
      for (int64_t c = 0; c < C; ++c) s += image[p * C + c] * h[c];
      o[p] = s;
    }
  }
}

}  // namespace

bool mask_products_apply(const at::Tensor& image, const at::Tensor& hyper) {
  return cpu_has_avx2_fma() && image.device().is_cpu() && hyper.device().is_cpu() &&
         image.scalar_type() == at::kFloat && hyper.scalar_type() == at::kFloat &&
         image.dim() == 3 && hyper.dim() == 3 && image.size(0) == hyper.size(0) &&
         image.size(2) == hyper.size(2) && image.size(2) % kLanes == 0 && image.size(2) > 0 &&
         image.is_contiguous() && hyper.is_contiguous() && !autograd_records(image, hyper);
}

at::Tensor mask_products(const at::Tensor& image, const at::Tensor& hyper) {
  const std::vector<c10::IValue> inputs{image, hyper};  // the guard refers to them to its end
  RECORD_FUNCTION("sd::mask_products", inputs);
  const int64_t B = image.size(0), P = image.size(1), C = image.size(2), M = hyper.size(1);
  at::Tensor out = at::empty({B, M, P}, image.options());
  const int64_t blocks = (P + kBlockPixels - 1) / kBlockPixels;
  const float *x = image.data_ptr<float>(), *h = hyper.data_ptr<float>();
  float* o = out.data_ptr<float>();
  at::parallel_for(0, B * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / blocks, first = task % blocks * kBlockPixels;
      products(x + b * P * C, h + b * M * C, first, std::min(P, first + kBlockPixels), P, M, C,
               o + b * M * P);
    }
  });
  return out;
}

}  // namespace sd::kernels
