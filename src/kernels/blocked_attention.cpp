#include "kernels/blocked_attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "kernels/autograd.h"
#include "kernels/avx2.h"

namespace sd::kernels {
namespace {

// A register tile: 6 query rows x 16 keys (or 16 output columns), 12 accumulators of the 16
// registers, the rest for two rows of the other operand and a broadcast.
constexpr int64_t kTileRows = 6;
constexpr int64_t kTileKeys = 16;
// A task's query rows, at most, and the keys one step of the running softmax takes: 96 x 256
// scores (96 KB) and, at d 64, 64 KB each of keys and values stay in a core's L2 cache.
constexpr int64_t kBlockRows = 96;
constexpr int64_t kChunkKeys = 256;

constexpr float kLowest = -std::numeric_limits<float>::infinity();

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

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

// s (6 x 16, lds apart) = q (6 rows, d apart) . a panel of keys (d x 16, key t in column t).
SD_AVX2 void score_tile(const float* q, int64_t d, const float* panel, float* s, int64_t lds) {
  __m256 acc[kTileRows][2];
#pragma GCC unroll 6
  for (int r = 0; r < kTileRows; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t c = 0; c < d; ++c) {
    const __m256 k0 = _mm256_loadu_ps(panel + c * kTileKeys),
                 k1 = _mm256_loadu_ps(panel + c * kTileKeys + kLanes);
#pragma GCC unroll 6
    for (int r = 0; r < kTileRows; ++r) {
      const __m256 x = _mm256_broadcast_ss(q + r * d + c);
      acc[r][0] = _mm256_fmadd_ps(x, k0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(x, k1, acc[r][1]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < kTileRows; ++r) {
    _mm256_storeu_ps(s + r * lds, acc[r][0]);
    _mm256_storeu_ps(s + r * lds + kLanes, acc[r][1]);
  }
}

// o (6 x 8·Regs, ldo apart) += p (6 rows of m weights, ldp apart) . v (m rows, ldv apart).
template <int Regs>
SD_AVX2 void value_tile(const float* p, int64_t ldp, const float* v, int64_t ldv, int64_t m,
                        float* o, int64_t ldo) {
  __m256 acc[kTileRows][Regs];
#pragma GCC unroll 6
  for (int r = 0; r < kTileRows; ++r)
#pragma GCC unroll 2
    for (int g = 0; g < Regs; ++g) acc[r][g] = _mm256_loadu_ps(o + r * ldo + g * kLanes);
  for (int64_t j = 0; j < m; ++j) {
    __m256 row[Regs];
#pragma GCC unroll 2
    for (int g = 0; g < Regs; ++g) row[g] = _mm256_loadu_ps(v + j * ldv + g * kLanes);
#pragma GCC unroll 6
    for (int r = 0; r < kTileRows; ++r) {
      const __m256 x = _mm256_broadcast_ss(p + r * ldp + j);
#pragma GCC unroll 2
      for (int g = 0; g < Regs; ++g) acc[r][g] = _mm256_fmadd_ps(x, row[g], acc[r][g]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < kTileRows; ++r)
#pragma GCC unroll 2
    for (int g = 0; g < Regs; ++g) _mm256_storeu_ps(o + r * ldo + g * kLanes, acc[r][g]);
}

// bias[j - j0] = rel_h[kh] + rel_w[kw] for the keys j in [j0, j1) (key j at kh = j / w,
// kw = j % w), a key row at a time in whole registers: bias and rel_w may be written and read up
// to 7 floats past their end (a key row's last register is overwritten by the next row's).
SD_AVX2 void rel_pos_bias(int64_t j0, int64_t j1, const float* rel_h, const float* rel_w, int64_t w,
                          float* bias) {
  for (int64_t j = j0; j < j1;) {
    const int64_t kh = j / w, row_start = kh * w, end = std::min(j1, row_start + w);
    const __m256 h = _mm256_set1_ps(rel_h[kh]);
    float* row = bias + (row_start - j0);  // indexed by kw
    for (int64_t kw = j - row_start; kw < end - row_start; kw += kLanes)
      _mm256_storeu_ps(row + kw, _mm256_add_ps(h, _mm256_loadu_ps(rel_w + kw)));
    j = end;
  }
}

// s[i] += bias[i] for i < n, returning the largest sum; s[n, n rounded up to 8) are written
// (with values the caller does not use).
SD_AVX2 float add_bias(float* s, const float* bias, int64_t n) {
  const __m256 lowest = _mm256_set1_ps(kLowest);
  __m256 top = lowest;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256 x = _mm256_add_ps(_mm256_loadu_ps(s + i), _mm256_loadu_ps(bias + i));
    _mm256_storeu_ps(s + i, x);
    top = _mm256_max_ps(top, x);
  }
  if (i < n) {
    const __m256 x = _mm256_add_ps(_mm256_loadu_ps(s + i), _mm256_loadu_ps(bias + i));
    _mm256_storeu_ps(s + i, x);
    top = _mm256_max_ps(top, _mm256_blendv_ps(lowest, x, _mm256_castsi256_ps(first_lanes(n - i))));
  }
  return horizontal_max(top);
}

// s[i] = e^(s[i] - shift) for i < n, returning their sum; s[n, n rounded up to 8) are written
// (with values the caller does not use).
SD_AVX2 float exp_and_sum(float* s, int64_t n, float shift) {
  const __m256 by = _mm256_set1_ps(shift);
  __m256 total = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), by));
    _mm256_storeu_ps(s + i, e);
    total = _mm256_add_ps(total, e);
  }
  if (i < n) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), by));
    _mm256_storeu_ps(s + i, e);
    total = _mm256_add_ps(total, _mm256_and_ps(e, _mm256_castsi256_ps(first_lanes(n - i))));
  }
  return horizontal_sum(total);
}

SD_AVX2 void scale_row(const float* x, int64_t d, float factor, float* out) {
  const __m256 f = _mm256_set1_ps(factor);
  for (int64_t c = 0; c < d; c += kLanes)
    _mm256_storeu_ps(out + c, _mm256_mul_ps(_mm256_loadu_ps(x + c), f));
}

// One head of one image: q (n rows of d, q_stride apart), its keys and values as pack_head
// leaves them, the scores' bias: this head's n x n table, or (table null) the rel-pos terms of
// get_rel_pos's tables rh (h x h x d) and rw (w x w x d), and where its output rows go
// (out_stride apart).
struct Head {
  const float *q, *keys, *values, *table, *rh, *rw;
  int64_t q_stride, out_stride, h, w, d, n, n_padded;
  float* out;
  float scale;
};

// Keys as panels of 16 (d x 16 each, key t's values in column t) and values as n_padded rows of
// d; the keys past n are zeros.
void pack_head(const float* k, int64_t k_stride, const float* v, int64_t v_stride, int64_t n,
               int64_t n_padded, int64_t d, float* keys, float* values) {
  for (int64_t j = 0; j < n_padded; ++j) {
    float* panel = keys + j / kTileKeys * d * kTileKeys + j % kTileKeys;
    for (int64_t c = 0; c < d; ++c) panel[c * kTileKeys] = j < n ? k[j * k_stride + c] : 0.0f;
    if (j < n)
      std::copy(v + j * v_stride, v + j * v_stride + d, values + j * d);
    else
      std::fill(values + j * d, values + (j + 1) * d, 0.0f);
  }
}

// A task's buffers: queries (scaled), the rel-pos terms of each row (h + w), the running
// softmax's maximum and sum per row, the outputs' sums, a chunk of scores and a row's bias. The
// two read a register past their end start as zeros, so that the lanes read there (and then
// left out) hold numbers.
struct Scratch {
  Scratch(int64_t d, int64_t h, int64_t w)
      : queries(new float[kBlockRows * d]),
        rel(new float[kBlockRows * (h + w) + kLanes]()),
        top(new float[kBlockRows]),
        total(new float[kBlockRows]),
        sums(new float[kBlockRows * d]),
        scores(new float[kBlockRows * kChunkKeys]),
        bias(new float[kChunkKeys + kLanes]()) {}
  std::unique_ptr<float[]> queries, rel, top, total, sums, scores, bias;
};

// Query rows [first, first + rows) of a head, rows <= kBlockRows: the keys a chunk at a time,
// the softmax kept running (each row's maximum so far, the sum and the outputs rescaled when it
// grows), as flash attention does.
SD_AVX2 void attend_rows(const Head& a, int64_t first, int64_t rows, Scratch& b) {
  const int64_t d = a.d, hw = a.h + a.w, padded_rows = round_up(rows, kTileRows);
  for (int64_t r = 0; r < padded_rows; ++r) {
    float* q = b.queries.get() + r * d;
    if (r < rows)
      scale_row(a.q + (first + r) * a.q_stride, d, a.scale, q);
    else
      std::fill(q, q + d, 0.0f);
  }
  for (int64_t r = 0; r < rows && !a.table; ++r) {
    const int64_t t = first + r, th = t / a.w, tw = t % a.w;
    const float* q = a.q + t * a.q_stride;
    dot_rows(q, a.rh + th * a.h * d, a.h, d, b.rel.get() + r * hw);
    dot_rows(q, a.rw + tw * a.w * d, a.w, d, b.rel.get() + r * hw + a.h);
  }
  std::fill(b.top.get(), b.top.get() + rows, kLowest);
  std::fill(b.total.get(), b.total.get() + rows, 0.0f);
  std::fill(b.sums.get(), b.sums.get() + padded_rows * d, 0.0f);
  float* scores = b.scores.get();
  for (int64_t j0 = 0; j0 < a.n_padded; j0 += kChunkKeys) {
    const int64_t keys = std::min(kChunkKeys, a.n_padded - j0), valid = std::min(keys, a.n - j0);
    for (int64_t p = 0; p < keys; p += kTileKeys)
      for (int64_t r = 0; r < padded_rows; r += kTileRows)
        score_tile(b.queries.get() + r * d, d, a.keys + (j0 + p) * d, scores + r * kChunkKeys + p,
                   kChunkKeys);
    for (int64_t r = 0; r < rows; ++r) {
      float* s = scores + r * kChunkKeys;
      const float* rel = b.rel.get() + r * hw;
      if (a.table) {
        const float* row = a.table + (first + r) * a.n + j0;
        std::copy(row, row + valid, b.bias.get());
      } else {
        rel_pos_bias(j0, j0 + valid, rel, rel + a.h, a.w, b.bias.get());
      }
      const float top = std::max(b.top[r], add_bias(s, b.bias.get(), valid));
      const float rescale = std::exp(b.top[r] - top);  // 0 for the first chunk
      b.total[r] = b.total[r] * rescale + exp_and_sum(s, valid, top);
      std::fill(s + valid, s + keys, 0.0f);
      if (rescale != 1.0f) scale_row(b.sums.get() + r * d, d, rescale, b.sums.get() + r * d);
      b.top[r] = top;
    }
    const float* values = a.values + j0 * d;
    for (int64_t r = 0; r < padded_rows; r += kTileRows) {
      int64_t c = 0;
      for (; c + kTileKeys <= d; c += kTileKeys)
        value_tile<2>(scores + r * kChunkKeys, kChunkKeys, values + c, d, keys,
                      b.sums.get() + r * d + c, d);
      if (c < d)
        value_tile<1>(scores + r * kChunkKeys, kChunkKeys, values + c, d, keys,
                      b.sums.get() + r * d + c, d);
    }
  }
  for (int64_t r = 0; r < rows; ++r)
    scale_row(b.sums.get() + r * d, d, 1.0f / b.total[r], a.out + (first + r) * a.out_stride);
}

}  // namespace

bool blocked_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const bool typed = q.scalar_type() == at::kFloat && k.scalar_type() == at::kFloat &&
                     v.scalar_type() == at::kFloat;
  const bool shaped = q.dim() == 4 && k.sizes() == q.sizes() && v.sizes() == q.sizes();
  return cpu_has_avx2_fma() && typed && shaped && q.device().is_cpu() &&
         !autograd_records(q, k, v) && q.size(3) % kLanes == 0 && q.stride(3) == 1 &&
         k.stride(3) == 1 && v.stride(3) == 1;
}

namespace {

// Both entry points: the bias a table (heads x n x n) or, where `table` is undefined, the
// rel-pos terms of rh (h x h x d) and rw (w x w x d).
at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                  const at::Tensor& table, const at::Tensor& rh, const at::Tensor& rw) {
  const int64_t batch = q.size(0), heads = q.size(1), n = q.size(2), d = q.size(3);
  const int64_t h = table.defined() ? 0 : rh.size(0), w = table.defined() ? 0 : rw.size(0);
  at::Tensor out = at::empty({batch, n, heads, d}, q.options());
  const int64_t n_padded = round_up(n, kTileKeys);
  const at::Tensor keys = at::empty({batch * heads, n_padded * d}, q.options()),
                   values = at::empty({batch * heads, n_padded * d}, q.options());
  at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / heads, head = i % heads;
      pack_head(k.data_ptr<float>() + b * k.stride(0) + head * k.stride(1), k.stride(2),
                v.data_ptr<float>() + b * v.stride(0) + head * v.stride(1), v.stride(2), n,
                n_padded, d, keys.data_ptr<float>() + i * n_padded * d,
                values.data_ptr<float>() + i * n_padded * d);
    }
  });
  // Blocks of equal rows (a multiple of the tile's) rather than a short last one.
  const int64_t blocks = (n + kBlockRows - 1) / kBlockRows;
  const int64_t rows = round_up((n + blocks - 1) / blocks, kTileRows);
  at::parallel_for(0, batch * heads * blocks, 1, [&](int64_t begin, int64_t end) {
    Scratch scratch(d, h, w);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / (heads * blocks), head = i / blocks % heads, first = i % blocks * rows;
      if (first >= n) continue;
      Head a;
      a.q = q.data_ptr<float>() + b * q.stride(0) + head * q.stride(1);
      a.keys = keys.data_ptr<float>() + (b * heads + head) * n_padded * d;
      a.values = values.data_ptr<float>() + (b * heads + head) * n_padded * d;
      a.table = table.defined() ? table.data_ptr<float>() + head * n * n : nullptr;
      a.rh = table.defined() ? nullptr : rh.data_ptr<float>();
      a.rw = table.defined() ? nullptr : rw.data_ptr<float>();
      a.q_stride = q.stride(2);
      a.out = out.data_ptr<float>() + b * out.stride(0) + head * d;
      a.out_stride = out.stride(1);
      a.h = h, a.w = w, a.d = d, a.n = n, a.n_padded = n_padded;
      a.scale = float(scale);
      attend_rows(a, first, std::min(rows, n - first), scratch);
    }
  });
  return out;
}

}  // namespace

at::Tensor blocked_rel_pos_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const at::Tensor& rel_h, const at::Tensor& rel_w,
                                     double scale) {
  // Seen by profilers and bench's FLOP count as fused_rel_pos_attention is.
  const std::vector<c10::IValue> inputs{q, k, v, rel_h, rel_w};
  RECORD_FUNCTION("sd::window_attention", inputs);
  const at::Tensor rh = rel_h.to(at::kFloat).contiguous(), rw = rel_w.to(at::kFloat).contiguous();
  const int64_t n = q.size(2), d = q.size(3);
  TORCH_CHECK(rh.dim() == 3 && rw.dim() == 3 && rh.size(0) == rh.size(1) &&
                  rw.size(0) == rw.size(1) && rh.size(0) * rw.size(0) == n && rh.size(2) == d &&
                  rw.size(2) == d,
              "blocked_rel_pos_attention: rel-pos tables ", rh.sizes(), " and ", rw.sizes(),
              " do not fit ", n, " tokens of width ", d);
  return attend(q, k, v, scale, {}, rh, rw);
}

at::Tensor blocked_biased_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& bias, double scale) {
  // Seen by profilers and bench's FLOP count as fused_window_attention is.
  const std::vector<c10::IValue> inputs{q, k, v, bias};
  RECORD_FUNCTION("sd::window_attention", inputs);
  const at::Tensor table = bias.to(at::kFloat).contiguous();
  const int64_t heads = q.size(1), n = q.size(2);
  TORCH_CHECK(
      table.dim() == 3 && table.size(0) == heads && table.size(1) == n && table.size(2) == n,
      "blocked_biased_attention: a bias of ", table.sizes(), " for ", heads, " heads of ", n,
      " tokens");
  return attend(q, k, v, scale, table, {}, {});
}

}  // namespace sd::kernels
