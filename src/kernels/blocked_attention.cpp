#include "kernels/blocked_attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <immintrin.h>

#include <algorithm>
#include <climits>
#include <limits>
#include <memory>

#include "kernels/autograd.h"
#include "kernels/blas.h"

#define SD_AVX2 __attribute__((target("avx2,fma")))

namespace sd::kernels {
#ifdef SAMDISTILL_WITH_BLAS
namespace {

constexpr int64_t kLanes = 8;  // floats per AVX2 register
// Scores a block of rows holds: 1 Mi floats, 4 MB, a thread's share of the L3 cache; the 256
// rows of a 64 x 64 grid's block pay the products' packing of k and v once.
constexpr int64_t kBlockScores = int64_t{1} << 20;

bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

// The lanes [0, n) of a block of 8, as AVX2's masked loads and stores take them.
SD_AVX2 inline __m256i first_lanes(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// e^x for x <= 0 (scores less their row's maximum): Cephes' expf as avx512::exp16, 2^n made in
// the exponent's bits. A NaN stays NaN (max and min return their second operand for it).
SD_AVX2 inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(88.0f), _mm256_max_ps(_mm256_set1_ps(-87.3f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i two_to_n = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);  // n in [-126, 127]
  return _mm256_mul_ps(p, _mm256_castsi256_ps(two_to_n));
}

SD_AVX2 inline float horizontal_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

SD_AVX2 inline float horizontal_max(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

// out[j] = q . table[j] for the n rows of a table (n x d, d a multiple of 8), four rows at a
// time sharing q's loads.
SD_AVX2 void dot_rows(const float* q, const float* table, int64_t n, int64_t d, float* out) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float* t = table + j * d;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t c = 0; c < d; c += kLanes) {
      const __m256 x = _mm256_loadu_ps(q + c);
      a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(t + c), a0);
      a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(t + d + c), a1);
      a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(t + 2 * d + c), a2);
      a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(t + 3 * d + c), a3);
    }
    out[j] = horizontal_sum(a0), out[j + 1] = horizontal_sum(a1);
    out[j + 2] = horizontal_sum(a2), out[j + 3] = horizontal_sum(a3);
  }
  for (; j < n; ++j) {
    __m256 a = _mm256_setzero_ps();
    for (int64_t c = 0; c < d; c += kLanes)
      a = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), _mm256_loadu_ps(table + j * d + c), a);
    out[j] = horizontal_sum(a);
  }
}

// A row of scores over the h x w keys (key (kh, kw) at kh·w + kw) becomes
// e^(s + rel_h[kh] + rel_w[kw] - top), top the row's largest such value; returns their sum.
SD_AVX2 float softmax_row(float* s, const float* rel_h, const float* rel_w, int64_t h, int64_t w) {
  const __m256i tail = first_lanes(w % kLanes);
  const __m256 lowest = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  __m256 top = lowest;
  for (int64_t kh = 0; kh < h; ++kh) {
    float* row = s + kh * w;
    const __m256 bias = _mm256_set1_ps(rel_h[kh]);
    int64_t kw = 0;
    for (; kw + kLanes <= w; kw += kLanes) {
      const __m256 x = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(row + kw), bias),
                                     _mm256_loadu_ps(rel_w + kw));
      _mm256_storeu_ps(row + kw, x);
      top = _mm256_max_ps(top, x);
    }
    if (kw < w) {
      const __m256 x = _mm256_add_ps(_mm256_add_ps(_mm256_maskload_ps(row + kw, tail), bias),
                                     _mm256_maskload_ps(rel_w + kw, tail));
      _mm256_maskstore_ps(row + kw, tail, x);
      top = _mm256_max_ps(top, _mm256_blendv_ps(lowest, x, _mm256_castsi256_ps(tail)));
    }
  }
  const __m256 shift = _mm256_set1_ps(horizontal_max(top));
  const int64_t n = h * w;
  __m256 total = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), shift));
    _mm256_storeu_ps(s + j, e);
    total = _mm256_add_ps(total, e);
  }
  if (j < n) {
    const __m256i last = first_lanes(n - j);
    const __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(s + j, last), shift));
    _mm256_maskstore_ps(s + j, last, e);
    total = _mm256_add_ps(total, _mm256_and_ps(e, _mm256_castsi256_ps(last)));
  }
  return horizontal_sum(total);
}

SD_AVX2 void scale_row(float* x, int64_t d, float factor) {
  const __m256 f = _mm256_set1_ps(factor);
  for (int64_t c = 0; c < d; c += kLanes)
    _mm256_storeu_ps(x + c, _mm256_mul_ps(_mm256_loadu_ps(x + c), f));
}

// One head of one image: q, k and v (n x d rows, q_stride, k_stride and v_stride floats apart),
// the transposed-free rel-pos tables rh (h x h x d) and rw (w x w x d), and where its output rows
// go (out_stride apart).
struct Head {
  const float *q, *k, *v, *rh, *rw;
  int64_t q_stride, k_stride, v_stride, out_stride, h, w, d;
  float* out;
  float scale;
};

// Query rows [first, first + rows) of a head; `scores` holds rows x n floats, `rel` h + w.
void attend_rows(const Head& a, int64_t first, int64_t rows, float* scores, float* rel,
                 float* inverse) {
  const int64_t n = a.h * a.w, d = a.d;
  blas::gemm_abt(int(rows), int(n), int(d), a.scale, a.q + first * a.q_stride, int(a.q_stride), a.k,
                 int(a.k_stride), 0.0f, scores, int(n));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = first + r, th = t / a.w, tw = t % a.w;
    const float* q = a.q + t * a.q_stride;
    dot_rows(q, a.rh + th * a.h * d, a.h, d, rel);
    dot_rows(q, a.rw + tw * a.w * d, a.w, d, rel + a.h);
    inverse[r] = 1.0f / softmax_row(scores + r * n, rel, rel + a.h, a.h, a.w);
  }
  float* out = a.out + first * a.out_stride;
  blas::gemm_ab(int(rows), int(d), int(n), scores, int(n), a.v, int(a.v_stride), out,
                int(a.out_stride));
  for (int64_t r = 0; r < rows; ++r) scale_row(out + r * a.out_stride, d, inverse[r]);
}

bool fits_int(const at::Tensor& t) {
  for (int64_t i = 0; i < t.dim(); ++i)
    if (t.stride(i) > INT_MAX || t.size(i) > INT_MAX) return false;
  return true;
}

}  // namespace

bool blocked_rel_pos_attention_applies(const at::Tensor& q, const at::Tensor& k,
                                       const at::Tensor& v) {
  const bool typed = q.scalar_type() == at::kFloat && k.scalar_type() == at::kFloat &&
                     v.scalar_type() == at::kFloat;
  const bool shaped = q.dim() == 4 && k.sizes() == q.sizes() && v.sizes() == q.sizes();
  return cpu_has_avx2_fma() && typed && shaped && q.device().is_cpu() &&
         !autograd_records(q, k, v) && q.size(3) % kLanes == 0 && q.stride(3) == 1 &&
         k.stride(3) == 1 && v.stride(3) == 1 && fits_int(q) && fits_int(k) && fits_int(v) &&
         q.size(2) * q.size(3) * q.size(1) <= INT_MAX;
}

at::Tensor blocked_rel_pos_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const at::Tensor& rel_h, const at::Tensor& rel_w,
                                     double scale) {
  // Seen by profilers and bench's FLOP count as fused_rel_pos_attention is.
  const std::vector<c10::IValue> inputs{q, k, v, rel_h, rel_w};
  RECORD_FUNCTION("sd::window_attention", inputs);
  const at::Tensor rh = rel_h.to(at::kFloat).contiguous(), rw = rel_w.to(at::kFloat).contiguous();
  const int64_t batch = q.size(0), heads = q.size(1), n = q.size(2), d = q.size(3);
  TORCH_CHECK(rh.dim() == 3 && rw.dim() == 3 && rh.size(0) == rh.size(1) &&
                  rw.size(0) == rw.size(1) && rh.size(0) * rw.size(0) == n && rh.size(2) == d &&
                  rw.size(2) == d,
              "blocked_rel_pos_attention: rel-pos tables ", rh.sizes(), " and ", rw.sizes(),
              " do not fit ", n, " tokens of width ", d);
  at::Tensor out = at::empty({batch, n, heads, d}, q.options());
  const int64_t rows = std::clamp(kBlockScores / n, int64_t{1}, n);
  const int64_t blocks = (n + rows - 1) / rows;
  at::parallel_for(0, batch * heads * blocks, 1, [&](int64_t begin, int64_t end) {
    const std::unique_ptr<float[]> scores(new float[rows * n]),
        rel(new float[rh.size(0) + rw.size(0)]), inverse(new float[rows]);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / (heads * blocks), head = i / blocks % heads, first = i % blocks * rows;
      Head a;
      a.q = q.data_ptr<float>() + b * q.stride(0) + head * q.stride(1);
      a.k = k.data_ptr<float>() + b * k.stride(0) + head * k.stride(1);
      a.v = v.data_ptr<float>() + b * v.stride(0) + head * v.stride(1);
      a.rh = rh.data_ptr<float>(), a.rw = rw.data_ptr<float>();
      a.q_stride = q.stride(2), a.k_stride = k.stride(2), a.v_stride = v.stride(2);
      a.out = out.data_ptr<float>() + b * out.stride(0) + head * d;
      a.out_stride = out.stride(1);
      a.h = rh.size(0), a.w = rw.size(0), a.d = d, a.scale = float(scale);
      attend_rows(a, first, std::min(rows, n - first), scores.get(), rel.get(), inverse.get());
    }
  });
  return out;
}

#else
bool blocked_rel_pos_attention_applies(const at::Tensor&, const at::Tensor&, const at::Tensor&) {
  return false;
}

at::Tensor blocked_rel_pos_attention(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                     const at::Tensor&, const at::Tensor&, double) {
  TORCH_CHECK(false, "blocked_rel_pos_attention: this build has no BLAS");
}
#endif

}  // namespace sd::kernels
