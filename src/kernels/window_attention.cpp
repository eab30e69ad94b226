#include "kernels/window_attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <c10/util/BFloat16.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "kernels/amx_tiles.h"
#include "kernels/autograd.h"
#include "kernels/avx512_math.h"
#include "kernels/batched_matmul.h"
#include "kernels/blocked_attention.h"
#include "util/cpu.h"

namespace sd::kernels {
namespace {

using avx512::exp16;
using avx512::kLanes;
using avx512::padded;
using avx512::tail_mask;

constexpr int kRows = 8;  // query rows per block: 8 independent FMA chains
// Keys per pass of the online softmax where there are more (the global attention of SAM's ViT):
// a pass's keys, values and scores stay in the core's cache.
constexpr int64_t kChunk = 256;

// One window and head in fp32: kᵀ repacked in blocks of 16 keys, each d x 16 (keys past N
// zero); q and v read in place (fp32) or from a converted copy (bf16), rows q_stride and
// v_stride apart.
struct Window {
  int64_t n = 0, np = 0, d = 0;
  std::vector<float> kt, scores;  // scores: kRows x np
  const float* q = nullptr;
  const float* v = nullptr;
  int64_t q_stride = 0, v_stride = 0;
};

// scores[r][j - from] = q[r] . k[j] for R rows of q and the keys [from, to) (multiples of 16);
// score rows are `stride` apart.
template <int R>
SD_AVX512 void score_rows(const float* q, Window& w, int64_t from, int64_t to, int64_t stride) {
  for (int64_t j = from; j < to; j += kLanes) {
    __m512 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    const float* kt = &w.kt[j * w.d];
    for (int64_t c = 0; c < w.d; ++c) {
      const __m512 kc = _mm512_loadu_ps(kt + c * kLanes);
      for (int r = 0; r < R; ++r)
        acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(q[r * w.q_stride + c]), kc, acc[r]);
    }
    for (int r = 0; r < R; ++r) _mm512_storeu_ps(&w.scores[r * stride + j - from], acc[r]);
  }
}

// A row of scores becomes softmax(scores · scale + bias) (bias: the row's N values); the
// columns past N become 0.
SD_AVX512 void softmax_row(float* s, const float* bias, int64_t n, int64_t np, float scale) {
  const __mmask16 last = tail_mask(n);
  const __m512 vscale = _mm512_set1_ps(scale);
  __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < np; j += kLanes) {
    const __mmask16 m = j + kLanes < np ? __mmask16(0xFFFF) : last;
    const __m512 x =
        _mm512_fmadd_ps(_mm512_loadu_ps(s + j), vscale, _mm512_maskz_loadu_ps(m, bias + j));
    _mm512_storeu_ps(s + j, x);
    vmax = _mm512_mask_max_ps(vmax, m, vmax, x);
  }
  const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
  __m512 vsum = _mm512_setzero_ps();
  for (int64_t j = 0; j < np; j += kLanes) {
    const __mmask16 m = j + kLanes < np ? __mmask16(0xFFFF) : last;
    const __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_loadu_ps(s + j), top)));
    _mm512_storeu_ps(s + j, e);
    vsum = _mm512_add_ps(vsum, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
  for (int64_t j = 0; j < np; j += kLanes)
    _mm512_storeu_ps(s + j, _mm512_mul_ps(_mm512_loadu_ps(s + j), inv));
}

// out[g] (+)= probabilities[g] . v[:, columns] for G rows and C blocks of 16 columns, over the
// keys [from, to): a key's C blocks of v loaded once for the G rows (v's rows read in order).
template <int G, int C>
SD_AVX512 void weigh_block(const Window& w, const float* probabilities, int64_t from, int64_t to,
                           int64_t stride, int64_t column, bool accumulate, float* out,
                           int64_t out_stride) {
  __m512 acc[G][C];
  for (int g = 0; g < G; ++g)
    for (int c = 0; c < C; ++c)
      acc[g][c] = accumulate ? _mm512_loadu_ps(out + g * out_stride + column + c * kLanes)
                             : _mm512_setzero_ps();
  for (int64_t j = from; j < to; ++j) {
    const float* v_row = w.v + j * w.v_stride + column;
    __m512 vj[C];
    for (int c = 0; c < C; ++c) vj[c] = _mm512_loadu_ps(v_row + c * kLanes);
    for (int g = 0; g < G; ++g) {
      const __m512 p = _mm512_set1_ps(probabilities[g * stride + j - from]);
      for (int c = 0; c < C; ++c) acc[g][c] = _mm512_fmadd_ps(p, vj[c], acc[g][c]);
    }
  }
  for (int g = 0; g < G; ++g)
    for (int c = 0; c < C; ++c)
      _mm512_storeu_ps(out + g * out_stride + column + c * kLanes, acc[g][c]);
}

// out[r] (+)= probabilities[r] . v for R rows and the keys [from, to), in blocks of up to 4 rows
// by 4 x 16 columns: the rows' probabilities are `stride` apart from w.scores, `out` rows
// out_stride apart; `accumulate` adds to what `out` holds.
template <int R>
void weigh_values(const Window& w, int64_t from, int64_t to, int64_t stride, bool accumulate,
                  float* out, int64_t out_stride) {
  using Block = void (*)(const Window&, const float*, int64_t, int64_t, int64_t, int64_t, bool,
                         float*, int64_t);
  static constexpr Block blocks[4][4] = {
      {weigh_block<1, 1>, weigh_block<1, 2>, weigh_block<1, 3>, weigh_block<1, 4>},
      {weigh_block<2, 1>, weigh_block<2, 2>, weigh_block<2, 3>, weigh_block<2, 4>},
      {weigh_block<3, 1>, weigh_block<3, 2>, weigh_block<3, 3>, weigh_block<3, 4>},
      {weigh_block<4, 1>, weigh_block<4, 2>, weigh_block<4, 3>, weigh_block<4, 4>}};
  const int64_t columns = w.d / kLanes;
  for (int g = 0; g < R; g += 4) {
    const int rows = std::min(4, R - g);
    for (int64_t c = 0; c < columns; c += 4) {
      const int count = int(std::min<int64_t>(4, columns - c));
      blocks[rows - 1][count - 1](w, &w.scores[g * stride], from, to, stride, c * kLanes,
                                  accumulate, out + g * out_stride, out_stride);
    }
  }
}

// The first half of a pass of the online softmax over a row's `len` scores (`s`, padded to a
// multiple of 16) of the next keys: they become s · scale + bias, and the row's running maximum
// `top` with them is returned.
SD_AVX512 float biased_max(float* s, const float* bias, int64_t len, float scale, float top) {
  const __m512 vscale = _mm512_set1_ps(scale);
  __m512 vmax = _mm512_set1_ps(top);
  for (int64_t j = 0; j < len; j += kLanes) {
    const __mmask16 m = avx512::block_mask(j, len);
    const __m512 x =
        _mm512_fmadd_ps(_mm512_loadu_ps(s + j), vscale, _mm512_maskz_loadu_ps(m, bias + j));
    _mm512_storeu_ps(s + j, x);
    vmax = _mm512_mask_max_ps(vmax, m, vmax, x);
  }
  return _mm512_reduce_max_ps(vmax);
}

// The pass's end: the row's maximum grew from `top` to new_top and its new terms sum to `sum`.
// Returns what the row's earlier terms must be multiplied by.
inline float running_sums(float& top, float& total, float new_top, float sum) {
  const float rescale = std::exp(top - new_top);  // 0 on the first pass (top = -inf)
  total = total * rescale + sum;
  top = new_top;
  return rescale;
}

// One pass of the online softmax: the scores `s` become e^(s · scale + bias - max), max the
// row's running maximum `top`; their sum is added to `total`, and what the row's earlier terms
// must be multiplied by (the maximum having grown) is returned.
SD_AVX512 float online_softmax_pass(float* s, const float* bias, int64_t len, float scale,
                                    float& top, float& total) {
  const float new_top = biased_max(s, bias, len, scale, top);
  const __m512 vtop = _mm512_set1_ps(new_top);
  __m512 vsum = _mm512_setzero_ps();
  for (int64_t j = 0; j < len; j += kLanes) {
    const __mmask16 m = avx512::block_mask(j, len);
    const __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_loadu_ps(s + j), vtop)));
    _mm512_storeu_ps(s + j, e);
    vsum = _mm512_add_ps(vsum, e);
  }
  return running_sums(top, total, new_top, _mm512_reduce_add_ps(vsum));
}

// to = from · factor for n values (`to` may be `from`).
SD_AVX512 void scaled_copy(const float* from, int64_t n, float factor, float* to) {
  const __m512 f = _mm512_set1_ps(factor);
  for (int64_t j = 0; j < n; j += kLanes) {
    const __mmask16 m = avx512::block_mask(j, n);
    _mm512_mask_storeu_ps(to + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, from + j), f));
  }
}

// What the scores get before the softmax: rows of a heads x N x N tensor, or SAM's decomposed
// relative positions over an h x w grid of tokens (add_decomposed_rel_pos): for query t at
// (th, tw) and key (kh, kw), q_t . rh[th][kh] + q_t . rw[tw][kw]. The tables are laid out
// h x d x padded(h) and w x d x padded(w) (transposed, keys zero-padded to 16 lanes).
struct Bias {
  const float* full = nullptr;
  const float* rh = nullptr;
  const float* rw = nullptr;
  int64_t h = 0, w = 0;
  at::Tensor rows_h, rows_w;  // get_rel_pos's h x h x d and w x w x d, for AMX's tiles
};

// Up to 4 consecutive blocks of 16 keys of a rel-pos table that a query row multiplies: the
// row (`q`), the first block's entry for channel 0 (`table`; channels `stride` floats apart),
// the terms' destination `out`.
struct TableRow {
  const float* q;
  const float* table;
  float* out;
};

// out = q . table for R table rows of B blocks each: R x B independent FMA chains (8 keep both
// FMA units busy), the row's broadcast shared by its blocks.
template <int R, int B>
SD_AVX512 void dot_table_rows(int64_t d, int64_t stride, const TableRow* rows) {
  const float* q[R];
  const float* table[R];
  __m512 acc[R][B];
  for (int r = 0; r < R; ++r) {
    q[r] = rows[r].q, table[r] = rows[r].table;
    for (int b = 0; b < B; ++b) acc[r][b] = _mm512_setzero_ps();
  }
  for (int64_t c = 0; c < d; ++c)
    for (int r = 0; r < R; ++r) {
      const __m512 qc = _mm512_set1_ps(q[r][c]);
      for (int b = 0; b < B; ++b)
        acc[r][b] =
            _mm512_fmadd_ps(qc, _mm512_loadu_ps(table[r] + c * stride + b * kLanes), acc[r][b]);
    }
  for (int r = 0; r < R; ++r)
    for (int b = 0; b < B; ++b) _mm512_storeu_ps(rows[r].out + b * kLanes, acc[r][b]);
}

using DotTableRows = void (*)(int64_t, int64_t, const TableRow*);

// dot_table_rows<1, B> ... dot_table_rows<sizeof...(R), B>.
template <int B, size_t... R>
constexpr std::array<DotTableRows, sizeof...(R)> table_row_dots(std::index_sequence<R...>) {
  return {dot_table_rows<int(R) + 1, B>...};
}

// Table rows of B blocks, 8 / B at a time.
template <int B>
class TableRows {
 public:
  TableRows(int64_t d, int64_t stride) : d_(d), stride_(stride) {}
  void add(const TableRow& row) {
    rows_[pending_++] = row;
    if (pending_ == kRows) flush();
  }
  void flush() {
    static constexpr auto dots = table_row_dots<B>(std::make_index_sequence<kRows>());
    if (pending_ > 0) dots[pending_ - 1](d_, stride_, rows_);
    pending_ = 0;
  }

 private:
  static constexpr int kRows = 8 / B;
  int64_t d_, stride_;
  TableRow rows_[kRows];
  int pending_ = 0;
};

// One table (keys padded to 16, `stride` of them) for `count` rows: the first's entries at
// `table(r)`, the terms into `out(r)`; blocks of 16 keys in groups of up to 4.
template <class Table, class Out>
void table_terms(const float* q, int64_t q_stride, int count, int64_t d, int64_t stride,
                 Table table, Out out) {
  const int64_t blocks = stride / kLanes;
  TableRows<4> fours(d, stride);
  TableRows<2> twos(d, stride);
  TableRows<1> ones(d, stride);
  for (int r = 0; r < count; ++r)
    for (int64_t b = 0; b < blocks;) {
      const TableRow row{q + r * q_stride, table(r) + b * kLanes, out(r) + b * kLanes};
      if (blocks - b >= 4)
        fours.add(row), b += 4;
      else if (blocks - b >= 2)
        twos.add(row), b += 2;
      else
        ones.add(row), b += 1;
    }
  fours.flush(), twos.flush(), ones.flush();
}

// The relative-position terms of `count` query rows from token `first` (fp32 rows `q`,
// q_stride apart): for each, h + w values (q . rh[th][kh], then q . rw[tw][kw]) into `rel`,
// padded(h) + padded(w) floats a row.
void rel_pos_terms(const Bias& b, const float* q, int64_t q_stride, int64_t first, int count,
                   int64_t d, float* rel) {
  const int64_t hp = padded(b.h), wp = padded(b.w);
  table_terms(
      q, q_stride, count, d, hp, [&](int r) { return b.rh + (first + r) / b.w * d * hp; },
      [&](int r) { return rel + r * (hp + wp); });
  table_terms(
      q, q_stride, count, d, wp, [&](int r) { return b.rw + (first + r) % b.w * d * wp; },
      [&](int r) { return rel + r * (hp + wp) + hp; });
}

// visit(j, kh, kw, count) for each run of the keys [from, from + len) in one row kh of the
// key grid: keys j .. j + count of the pass are (kh, kw) .. (kh, kw + count).
template <class Visit>
void for_each_grid_row(const Bias& b, int64_t from, int64_t len, Visit visit) {
  int64_t kh = from / b.w, kw = from % b.w;
  for (int64_t j = 0; j < len; ++kh, kw = 0) {
    const int64_t count = std::min(b.w - kw, len - j);
    visit(j, kh, kw, count);
    j += count;
  }
}

// A row's decomposed bias for the keys [from, from + len) into `out`: rel_h[kh] + rel_w[kw]
// at key kh * w + kw, from the row's rel_pos_terms.
SD_AVX512 void decomposed_bias(const Bias& b, const float* rel, int64_t from, int64_t len,
                               float* out) {
  const float* rel_w = rel + padded(b.h);
  for_each_grid_row(b, from, len, [&](int64_t j, int64_t kh, int64_t kw, int64_t count) SD_AVX512 {
    const __m512 rel_h = _mm512_set1_ps(rel[kh]);
    for (int64_t k = 0; k < count; k += kLanes) {
      const __mmask16 m = avx512::block_mask(k, count);
      _mm512_mask_storeu_ps(out + j + k, m,
                            _mm512_add_ps(rel_h, _mm512_maskz_loadu_ps(m, rel_w + kw + k)));
    }
  });
}

// Where the rows of a block (from query `first`, head `head`) find their bias: row r's values for
// the keys [from, from + len) as a pointer into the full bias, or made into `out` from the row's
// rel_pos_terms (`rel`, rel_size apart).
struct RowBias {
  const Bias& bias;
  int64_t head, first, n;
  const float* rel;
  int64_t rel_size;
  const float* row(int r, int64_t from, int64_t len, float* out) const {
    if (bias.full) return bias.full + (head * n + first + r) * n + from;
    decomposed_bias(bias, rel + r * rel_size, from, len, out);
    return out;
  }
};

// R rows of one window and head, from row `i`, with their biases: output rows (R x d, fp32)
// out. All keys at once where there are at most kChunk, else kChunk at a time with an online
// softmax (`pass_bias`: R x kChunk scratch).
template <int R>
void attend_rows(Window& w, int64_t i, const RowBias& bias, float* pass_bias, float scale,
                 float* out, int64_t out_stride) {
  const float* q = w.q + i * w.q_stride;
  if (w.n <= kChunk) {
    score_rows<R>(q, w, 0, w.np, w.np);
    for (int r = 0; r < R; ++r)
      softmax_row(&w.scores[r * w.np], bias.row(r, 0, w.n, pass_bias + r * kChunk), w.n, w.np,
                  scale);
    weigh_values<R>(w, 0, w.n, w.np, false, out, out_stride);
    return;
  }
  float top[R], total[R];
  for (int r = 0; r < R; ++r) top[r] = -std::numeric_limits<float>::infinity(), total[r] = 0;
  for (int64_t from = 0; from < w.n; from += kChunk) {
    const int64_t len = std::min(kChunk, w.n - from);
    score_rows<R>(q, w, from, from + padded(len), kChunk);
    for (int r = 0; r < R; ++r) {
      const float* row_bias = bias.row(r, from, len, pass_bias + r * kChunk);
      const float rescale =
          online_softmax_pass(&w.scores[r * kChunk], row_bias, len, scale, top[r], total[r]);
      if (from > 0) scaled_copy(out + r * out_stride, w.d, rescale, out + r * out_stride);
    }
    weigh_values<R>(w, from, from + len, kChunk, from > 0, out, out_stride);
  }
  for (int r = 0; r < R; ++r)
    scaled_copy(out + r * out_stride, w.d, 1.0f / total[r], out + r * out_stride);
}

// Rows [i, i + rows) for 1 <= rows <= kRows.
void attend_block(Window& w, int64_t i, int rows, const RowBias& bias, float* pass_bias,
                  float scale, float* out, int64_t out_stride) {
  using Block = void (*)(Window&, int64_t, const RowBias&, float*, float, float*, int64_t);
  static constexpr Block blocks[kRows] = {attend_rows<1>, attend_rows<2>, attend_rows<3>,
                                          attend_rows<4>, attend_rows<5>, attend_rows<6>,
                                          attend_rows<7>, attend_rows<8>};
  blocks[rows - 1](w, i, bias, pass_bias, scale, out, out_stride);
}

// n x d rows `row_stride` apart as fp32: in place, or converted (or `copied`) into `to`
// (n x d, contiguous).
template <class T>
const float* as_floats(const T* rows, int64_t row_stride, int64_t n, int64_t d,
                       std::vector<float>& to, bool copied = false) {
  if constexpr (std::is_same_v<T, float>)
    if (!copied) return rows;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t c = 0; c < d; ++c) to[j * d + c] = float(rows[j * row_stride + c]);
  return to.data();
}

// w.kt = kᵀ for the window's n x d keys, rows `row_stride` apart, in blocks of 16 keys (d x 16
// each): 16 keys at a time gathered down each column.
SD_AVX512 void transpose_keys(const float* k, int64_t row_stride, Window& w) {
  const __m512i rows =
      _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                         _mm512_set1_epi32(int(row_stride)));
  const __mmask16 last = tail_mask(w.n);
  for (int64_t j = 0; j < w.np; j += kLanes) {
    const __mmask16 m = j + kLanes < w.np ? __mmask16(0xFFFF) : last;
    for (int64_t c = 0; c < w.d; ++c)
      _mm512_storeu_ps(&w.kt[j * w.d + c * kLanes],
                       _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, rows,
                                                k + j * row_stride + c, sizeof(float)));
  }
}

// out = softmax(q kᵀ · scale + bias) v; the softmax also into `probabilities`
// (B x heads x N x N, contiguous) when it is defined, which needs N <= kChunk.
template <class T>
void attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Bias& bias,
            float scale, at::Tensor& out, const at::Tensor& probabilities) {
  const int64_t batch = q.size(0), heads = q.size(1), n = q.size(2), d = q.size(3);
  const int64_t out_row = heads * d;  // out: B x N x heads x d, contiguous
  constexpr bool fp32 = std::is_same_v<T, float>;
  const T* pq = q.data_ptr<T>();
  const T* pk = k.data_ptr<T>();
  const T* pv = v.data_ptr<T>();
  T* pout = out.data_ptr<T>();
  float* pprob = probabilities.defined() ? probabilities.data_ptr<float>() : nullptr;
  const int64_t k_stride = k.stride(2);
  // More keys than a pass: v copied contiguous, so that a pass's values stay in cache.
  const bool copy_v = !fp32 || n > kChunk;
  at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {
    Window w;
    w.n = n, w.np = padded(n), w.d = d;
    w.kt.resize(d * w.np), w.scores.resize(kRows * w.np);
    w.q_stride = fp32 ? q.stride(2) : d, w.v_stride = copy_v ? d : v.stride(2);
    std::vector<float> q16(fp32 ? 0 : n * d), k16(q16.size()), v16(copy_v ? n * d : 0);
    std::vector<float> rows(kRows * d);
    std::vector<float> pass_bias(kRows * kChunk);
    const int64_t rel_size = bias.full ? 0 : padded(bias.h) + padded(bias.w);
    std::vector<float> rel(kRows * rel_size);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / heads, h = task % heads;
      const T* k_rows = pk + b * k.stride(0) + h * k.stride(1);
      transpose_keys(as_floats(k_rows, k_stride, n, d, k16), fp32 ? k_stride : d, w);
      w.q = as_floats(pq + b * q.stride(0) + h * q.stride(1), q.stride(2), n, d, q16);
      w.v = as_floats(pv + b * v.stride(0) + h * v.stride(1), v.stride(2), n, d, v16, copy_v);
      for (int64_t i = 0; i < n; i += kRows) {
        const int count = int(std::min<int64_t>(kRows, n - i));
        if (!bias.full)
          rel_pos_terms(bias, w.q + i * w.q_stride, w.q_stride, i, count, d, rel.data());
        const RowBias row_bias{bias, h, i, n, rel.data(), rel_size};
        // fp32 rows straight into the output where one pass covers the keys; else through
        // `rows` (the online softmax's running sums, or bf16's conversion).
        float* target = rows.data();
        int64_t target_stride = d;
        T* out_rows = pout + (b * n + i) * out_row + h * d;
        if constexpr (fp32)
          if (n <= kChunk) target = out_rows, target_stride = out_row;
        attend_block(w, i, count, row_bias, pass_bias.data(), scale, target, target_stride);
        if (target == rows.data())
          for (int r = 0; r < count; ++r)
            for (int64_t c = 0; c < d; ++c) out_rows[r * out_row + c] = T(rows[r * d + c]);
        if (pprob)
          for (int r = 0; r < count; ++r)
            std::copy_n(&w.scores[r * w.np], n, pprob + ((task * n) + i + r) * n);
      }
    }
  });
}

// The fused kernel's q, k, v conditions (without the bias's).
bool fused_operands(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const at::ScalarType type = q.scalar_type();
  const bool typed = (type == at::kFloat || type == at::kBFloat16) && k.scalar_type() == type &&
                     v.scalar_type() == type;
  const bool autograd = autograd_records(q, k, v);
  const bool shaped = q.dim() == 4 && k.sizes() == q.sizes() && v.sizes() == q.sizes();
  return avx512::cpu_has_avx512() && typed && !autograd && shaped && q.device().is_cpu() &&
         q.size(3) % kLanes == 0 && q.stride(3) == 1 && k.stride(3) == 1 && v.stride(3) == 1 &&
         k.stride(2) == v.stride(2);
}

// n bf16 values (`from`) as fp32 into `to` (padded(n) values, zero past n).
SD_AVX512_BF16 void widen(const c10::BFloat16* from, int64_t n, float* to) {
  for (int64_t j = 0; j < n; j += kLanes) {
    const __mmask16 m = avx512::block_mask(j, n);
    const __m512i bits = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, from + j));
    _mm512_storeu_ps(to + j, _mm512_castsi512_ps(_mm512_slli_epi32(bits, 16)));
  }
}

// acc = acc · rescale + pass for a row of d values (a multiple of 16).
SD_AVX512 void add_pass(float* acc, const float* pass, int64_t d, float rescale) {
  const __m512 f = _mm512_set1_ps(rescale);
  for (int64_t c = 0; c < d; c += kLanes)
    _mm512_storeu_ps(acc + c,
                     _mm512_fmadd_ps(_mm512_loadu_ps(acc + c), f, _mm512_loadu_ps(pass + c)));
}

// x · factor as bf16 into `to` for a row of d values (a multiple of 16).
SD_AVX512_BF16 void scaled_to_bf16(const float* x, int64_t d, float factor, c10::BFloat16* to) {
  const __m512 f = _mm512_set1_ps(factor);
  for (int64_t c = 0; c < d; c += kLanes) {
    const __m256bh y = _mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_loadu_ps(x + c), f));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(to + c), (__m256i)y);
  }
}

// The tiles' softmax counts in powers of 2: e^x = 2^(x log2 e), log2 e folded into the scale
// and the rel-pos terms once.
constexpr float kLog2e = 1.44269504088896341f;

// The first half of a pass of the tiles' online softmax over a row's scores `s` of the keys
// [from, from + len): they become s · scale + rel_h[kh] + rel_w[kw] (`rel`: the row's
// rel_pos_terms) and the row's running maximum `top` with them is returned. Rows of keys that
// fill whole registers (the global blocks' 64) add the terms on the way; others (14 x 14
// windows) first lay the bias out in `scratch` (len floats): a masked store of 14 followed by a
// load across it stalls.
SD_AVX512 float rel_pos_biased_max(float* s, const Bias& b, const float* rel, int64_t from,
                                   int64_t len, float scale, float top, float* scratch) {
  if (b.w % kLanes != 0) {
    decomposed_bias(b, rel, from, len, scratch);
    return biased_max(s, scratch, len, scale, top);
  }
  const float* rel_w = rel + padded(b.h);
  const __m512 vscale = _mm512_set1_ps(scale);
  __m512 vmax[2] = {_mm512_set1_ps(top), _mm512_set1_ps(top)};  // two chains, as the sums below
  for_each_grid_row(b, from, len, [&](int64_t j, int64_t kh, int64_t kw, int64_t count) SD_AVX512 {
    const __m512 rel_h = _mm512_set1_ps(rel[kh]);
    for (int64_t k = 0; k < count; k += kLanes) {
      const __mmask16 m = avx512::block_mask(k, count);
      const __m512 bias = _mm512_add_ps(rel_h, _mm512_maskz_loadu_ps(m, rel_w + kw + k));
      const __m512 x = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, s + j + k), vscale, bias);
      _mm512_mask_storeu_ps(s + j + k, m, x);
      __m512& chain = vmax[(k / kLanes) & 1];
      chain = _mm512_mask_max_ps(chain, m, chain, x);
    }
  });
  return _mm512_reduce_max_ps(_mm512_max_ps(vmax[0], vmax[1]));
}

// A pass of the tiles' online softmax (powers of 2): the biased scores become 2^(x - max) as
// bf16 weights `e` (zero from len to len_p, a multiple of 16), max the row's running maximum
// `top`; their sum is added to `total`, and what the row's earlier terms must be multiplied by
// (the maximum having grown) is returned.
SD_AVX512_BF16 float tile_softmax_pass(float* s, const Bias& b, const float* rel, int64_t from,
                                       int64_t len, float scale, float& top, float& total,
                                       c10::BFloat16* e, int64_t len_p, float* scratch) {
  const float new_top = rel_pos_biased_max(s, b, rel, from, len, scale, top, scratch);
  const __m512 vtop = _mm512_set1_ps(new_top);
  // Two sums (len_p is a multiple of 32): one would wait on the last addition's latency.
  __m512 vsum[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int64_t j = 0; j < len_p; j += 2 * kLanes)
    for (int half = 0; half < 2; ++half) {
      const int64_t at = j + half * kLanes;
      const __mmask16 m = at < len ? avx512::block_mask(at, len) : __mmask16(0);
      const __m512 x = _mm512_maskz_mov_ps(
          m, avx512::exp2_16_for_bf16(_mm512_sub_ps(_mm512_loadu_ps(s + at), vtop)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(e + at), (__m256i)_mm512_cvtneps_pbh(x));
      vsum[half] = _mm512_add_ps(vsum[half], x);
    }
  const float rescale = std::exp2(top - new_top);  // 0 on the first pass (top = -inf)
  total = total * rescale + _mm512_reduce_add_ps(_mm512_add_ps(vsum[0], vsum[1]));
  top = new_top;
  return rescale;
}

// Query rows per task of attend_on_tiles: two tiles' rows.
constexpr int64_t kTileRows = 2 * amx::kTile;
// Keys per pass of its online softmax: fewer passes mean fewer of the rows' maxima and sums
// (across a register) and rescaled sums; the pass's 32 rows of scores and weights (96 KB)
// still sit in a core's L2 cache.
constexpr int64_t kTileChunk = 512;

// Each of the q_size tables of get_rel_pos's rows (q_size x k_size x d) as kᵀ for
// scores_on_tiles (amx::pack_keys), in bf16 as Python's autocast multiplies them: one table
// every round_up(k_size, 32) x d_p values.
at::Tensor tables_for_tiles(const at::Tensor& rows, int64_t d_p) {
  const at::Tensor table = rows.to(at::kBFloat16).contiguous();
  const int64_t tables = table.size(0), keys = table.size(1), d = table.size(2);
  const int64_t size = amx::round_up(keys, amx::kDepth) * d_p;
  at::Tensor packed = at::empty({tables, size}, table.options());
  for (int64_t t = 0; t < tables; ++t)
    amx::pack_keys(table[t].data_ptr<amx::bf16>(), d, keys, d, packed[t].data_ptr<amx::bf16>());
  return packed;
}

// The decomposed bias's terms of one window and head (rel_pos_terms' layout, times log2 e) for
// all its tokens, on the tiles: the grid's row th of tokens against table rh[th] and its column
// tw against rw[tw], each a product of up to 32 gathered query rows (`rows`, zero-padded) by
// the table's keys into `out`.
void rel_pos_terms_on_tiles(const amx::bf16* q, int64_t q_stride, int64_t d, const Bias& b,
                            const at::Tensor& rh, const at::Tensor& rw, float* rel,
                            std::vector<amx::bf16>& rows, std::vector<float>& out) {
  const int64_t d_p = amx::round_up(d, amx::kDepth), rel_size = padded(b.h) + padded(b.w);
  // `tables` tables of `keys` keys, each for `count` tokens (`token(table, i)`), into the rel
  // rows from `column` on.
  const auto terms = [&](const at::Tensor& packed, int64_t count, int64_t keys, auto token,
                         int64_t column) {
    const int64_t keys_p = amx::round_up(keys, amx::kDepth);
    const int64_t count_p = amx::round_up(count, kTileRows);
    rows.assign(count_p * d_p, amx::bf16(0));
    out.resize(count_p * keys_p);
    for (int64_t table = 0; table < packed.size(0); ++table) {
      for (int64_t i = 0; i < count; ++i)
        std::copy_n(q + token(table, i) * q_stride, d, &rows[i * d_p]);
      for (int64_t r = 0; r < count_p; r += kTileRows)
        amx::scores_on_tiles(&rows[r * d_p], d_p, packed[table].data_ptr<amx::bf16>(), 0,
                             keys_p / amx::kDepth, &out[r * keys_p], keys_p);
      for (int64_t i = 0; i < count; ++i)
        scaled_copy(&out[i * keys_p], keys, kLog2e, rel + token(table, i) * rel_size + column);
    }
  };
  terms(
      rh, b.w, b.h, [&](int64_t th, int64_t i) { return th * b.w + i; }, 0);
  terms(
      rw, b.h, b.w, [&](int64_t tw, int64_t i) { return i * b.w + tw; }, padded(b.h));
}

// The same terms row by row in fp32 (rel_pos_terms) for grids narrower than a pair of tiles'
// 32 keys, where the tiles would mostly multiply padding (14 x 14 windows: measured slower).
void rel_pos_terms_of_rows(const amx::bf16* q, int64_t q_stride, int64_t n, int64_t d,
                           const Bias& b, float* rel, std::vector<float>& rows) {
  rows.resize(n * padded(d));
  for (int64_t i = 0; i < n; ++i) widen(q + i * q_stride, d, &rows[i * padded(d)]);
  rel_pos_terms(b, rows.data(), padded(d), 0, int(n), d, rel);
  scaled_copy(rel, n * (padded(b.h) + padded(b.w)), kLog2e, rel);
}

// The bf16 attention with a decomposed bias (SAM's ViT) and both products on AMX's tiles
// (kernels/amx_tiles.h), 32 query rows of one head a task, kTileChunk keys a pass with an online
// softmax between the products: fp32 scores (autocast rounds them to bf16; these are closer to
// fp32's attention), bf16 weights e^(x - running max), fp32 sums. Keys and values are packed,
// and the rel-pos terms of the queries computed, once per window and head.
at::Tensor attend_on_tiles(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const Bias& bias, float scale) {
  using amx::bf16;
  const int64_t batch = q.size(0), heads = q.size(1), n = q.size(2), d = q.size(3);
  const int64_t d_p = amx::round_up(d, amx::kDepth), n_p = amx::round_up(n, amx::kDepth);
  at::Tensor out = at::empty({batch, n, heads, d}, q.options());
  // Each window and head's packed keys and values (the packing writes their zero padding).
  const at::Tensor packed = at::empty({2, batch * heads, n_p * d_p}, q.options());
  bf16* keys = packed[0].data_ptr<bf16>();
  bf16* values = packed[1].data_ptr<bf16>();
  // And their tokens' rel-pos terms.
  const int64_t rel_size = padded(bias.h) + padded(bias.w);
  const at::Tensor rel_terms =
      at::empty({batch * heads * n * rel_size}, q.options().dtype(at::kFloat));
  float* rel = rel_terms.data_ptr<float>();
  const bool terms_on_tiles = bias.h >= amx::kDepth && bias.w >= amx::kDepth;
  at::Tensor rh, rw;
  if (terms_on_tiles)
    rh = tables_for_tiles(bias.rows_h, d_p), rw = tables_for_tiles(bias.rows_w, d_p);
  const bf16* pq = q.data_ptr<bf16>();
  bf16* pout = out.data_ptr<bf16>();
  at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {
    amx::configure_thread();
    std::vector<bf16> rows;
    std::vector<float> terms, widened;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / heads, h = t % heads;
      amx::pack_keys(k.data_ptr<bf16>() + b * k.stride(0) + h * k.stride(1), k.stride(2), n, d,
                     keys + t * n_p * d_p);
      amx::pack_values(v.data_ptr<bf16>() + b * v.stride(0) + h * v.stride(1), v.stride(2), n, d,
                       values + t * n_p * d_p);
      const bf16* head_q = pq + b * q.stride(0) + h * q.stride(1);
      if (terms_on_tiles)
        rel_pos_terms_on_tiles(head_q, q.stride(2), d, bias, rh, rw, &rel[t * n * rel_size], rows,
                               terms);
      else
        rel_pos_terms_of_rows(head_q, q.stride(2), n, d, bias, &rel[t * n * rel_size], widened);
    }
  });
  const int64_t row_tasks = (n + kTileRows - 1) / kTileRows;
  at::parallel_for(0, batch * heads * row_tasks, 1, [&](int64_t begin, int64_t end) {
    amx::configure_thread();
    std::vector<bf16> q_tile(kTileRows * d_p), weights(kTileRows * kTileChunk);
    std::vector<float> scores(kTileRows * kTileChunk), pass_out(kTileRows * d_p),
        acc(kTileRows * d_p), pass_bias(kTileChunk);
    float top[kTileRows], total[kTileRows], rescale[kTileRows];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t t = task / row_tasks, b = t / heads, h = t % heads;
      const int64_t first = task % row_tasks * kTileRows;
      const int count = int(std::min(kTileRows, n - first));
      std::fill(q_tile.begin(), q_tile.end(), bf16(0));
      for (int r = 0; r < count; ++r)
        std::copy_n(pq + b * q.stride(0) + h * q.stride(1) + (first + r) * q.stride(2), d,
                    &q_tile[r * d_p]);
      const float* rows_rel = &rel[(t * n + first) * rel_size];
      std::fill_n(top, kTileRows, -std::numeric_limits<float>::infinity());
      std::fill_n(total, kTileRows, 0.0f);
      for (int64_t from = 0; from < n; from += kTileChunk) {
        const int64_t len = std::min(kTileChunk, n - from), len_p = amx::round_up(len, amx::kDepth);
        amx::scores_on_tiles(q_tile.data(), d_p, keys + t * n_p * d_p, from / amx::kTile,
                             len_p / amx::kDepth, scores.data(), kTileChunk);
        for (int r = 0; r < count; ++r)
          rescale[r] = tile_softmax_pass(&scores[r * kTileChunk], bias, rows_rel + r * rel_size,
                                         from, len, scale * kLog2e, top[r], total[r],
                                         &weights[r * kTileChunk], len_p, pass_bias.data());
        // The first pass's product is the running sum; later ones are added to it, rescaled.
        amx::weigh_on_tiles(weights.data(), kTileChunk, values + t * n_p * d_p, d_p,
                            from / amx::kDepth, len_p / amx::kDepth,
                            from == 0 ? acc.data() : pass_out.data(), d_p);
        if (from > 0)
          for (int r = 0; r < count; ++r)
            add_pass(&acc[r * d_p], &pass_out[r * d_p], d, rescale[r]);
      }
      for (int r = 0; r < count; ++r)
        scaled_to_bf16(&acc[r * d_p], d, 1.0f / total[r],
                       pout + ((b * n + first + r) * heads + h) * d);
    }
  });
  return out;
}

// The fused kernel under its profiler name, into a new B x N x heads x d tensor; the attention
// with decomposed relative positions in bf16 on AMX's tiles where there are tiles.
at::Tensor run_fused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const Bias& bias, double scale, const at::Tensor& probabilities) {
  // Seen by profilers and bench's FLOP count as one operation of inputs (q, k, v), with the
  // rel-pos tables (h x h x d, w x w x d) where their products are part of it.
  std::vector<c10::IValue> inputs{q, k, v};
  if (bias.rows_h.defined()) inputs.insert(inputs.end(), {bias.rows_h, bias.rows_w});
  RECORD_FUNCTION("sd::window_attention", inputs);
  static const bool tiles = amx::available() && cpu_has("avx512_bf16");
  if (tiles && !bias.full && !probabilities.defined() && q.scalar_type() == at::kBFloat16)
    return attend_on_tiles(q, k, v, bias, float(scale));
  at::Tensor out = at::empty({q.size(0), q.size(2), q.size(1), q.size(3)}, q.options());
  if (q.scalar_type() == at::kFloat)
    attend<float>(q, k, v, bias, float(scale), out, probabilities);
  else
    attend<c10::BFloat16>(q, k, v, bias, float(scale), out, probabilities);
  return out;
}

// get_rel_pos's rows (q_size x k_size x d) as the kernel reads them: fp32
// q_size x d x padded(k_size), the keys zero-padded.
at::Tensor transposed_table(const at::Tensor& rows) {
  const int64_t keys = rows.size(1);
  at::Tensor table = at::zeros({rows.size(0), rows.size(2), padded(keys)}, at::kFloat);
  table.narrow(2, 0, keys).copy_(rows.permute({0, 2, 1}));
  return table;
}

}  // namespace

bool fused_window_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& bias) {
  const bool bias_fits =
      bias.scalar_type() == at::kFloat && !autograd_records(bias) && q.dim() == 4 &&
      bias.sizes() == at::IntArrayRef{q.size(1), q.size(2), q.size(2)} && bias.is_contiguous();
  return bias_fits && fused_operands(q, k, v);
}

at::Tensor fused_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const at::Tensor& bias, double scale,
                                  const at::Tensor& probabilities) {
  TORCH_CHECK(!probabilities.defined() || q.size(2) <= kChunk,
              "fused_window_attention keeps the softmax of at most ", kChunk, " keys, not ",
              q.size(2));
  Bias rows;
  rows.full = bias.data_ptr<float>();
  return run_fused(q, k, v, rows, scale, probabilities);
}

bool fused_rel_pos_attention_applies(const at::Tensor& q, const at::Tensor& k,
                                     const at::Tensor& v) {
  return fused_operands(q, k, v);
}

at::Tensor fused_rel_pos_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const at::Tensor& rel_h, const at::Tensor& rel_w, double scale) {
  const at::Tensor rh = transposed_table(rel_h), rw = transposed_table(rel_w);
  Bias bias;
  bias.rh = rh.data_ptr<float>(), bias.rw = rw.data_ptr<float>();
  bias.h = rel_h.size(0), bias.w = rel_w.size(0);
  bias.rows_h = rel_h, bias.rows_w = rel_w;
  return run_fused(q, k, v, bias, scale, {});
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// q, k and v of qkv (B x N x heads x 3d) as B x heads x N x d views.
std::array<at::Tensor, 3> split_heads(const at::Tensor& qkv) {
  const int64_t d = qkv.size(3) / 3;
  std::array<at::Tensor, 3> parts;
  for (int64_t i = 0; i < 3; ++i) parts[i] = qkv.narrow(3, i * d, d).permute({0, 2, 1, 3});
  return parts;
}

// Without autograd: the output (B x N x heads x d, q's type) and, when `keep_softmax`, the
// softmax (B x heads x N x N; q's type, fp32 from the fused kernel, which runs where it applies).
// Elsewhere the windows' products read q, k, v where the projection left them
// (kernels/batched_matmul.h).
std::pair<at::Tensor, at::Tensor> attend_without_autograd(const at::Tensor& q, const at::Tensor& k,
                                                          const at::Tensor& v,
                                                          const at::Tensor& bias, double scale,
                                                          bool keep_softmax) {
  const int64_t batch = q.size(0), heads = q.size(1), n = q.size(2);
  if (fused_window_attention_applies(q, k, v, bias) && !(keep_softmax && n > kChunk)) {
    at::Tensor probabilities;
    if (keep_softmax)
      probabilities = at::empty({batch, heads, n, n}, q.options().dtype(at::kFloat));
    at::Tensor out = fused_window_attention(q, k, v, bias, scale, probabilities);
    return {out, probabilities};
  }
  if (!keep_softmax && blocked_attention_applies(q, k, v) && bias.scalar_type() == at::kFloat)
    return {blocked_biased_attention(q, k, v, bias, scale), {}};
  at::Tensor scores = at::empty({batch, heads, n, n}, q.options());
  batched_matmul_into(q, k.transpose(-2, -1), scores);
  // In q's type: under autocast an fp32 bias would turn the scores and softmax to fp32.
  at::Tensor probabilities = (scores * scale + bias.to(q.scalar_type())).softmax(-1);
  at::Tensor out = at::empty({batch, n, heads, q.size(3)}, q.options());
  batched_matmul_into(probabilities, v, out.permute({0, 2, 1, 3}));
  return {out, probabilities};
}

struct WindowAttention : torch::autograd::Function<WindowAttention> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& qkv, const at::Tensor& bias,
                            double scale) {
    const auto [q, k, v] = split_heads(qkv);
    auto [out, probabilities] = attend_without_autograd(q, k, v, bias, scale, true);
    ctx->save_for_backward({qkv, probabilities});
    ctx->saved_data["scale"] = scale;
    return out;
  }

  // With S = q kᵀ · scale + bias and P = softmax(S): dv = Pᵀ dout, dP = dout vᵀ,
  // dS = P (dP - rowsum(dP P)), dbias = dS summed over windows, dq = dS k · scale,
  // dk = dSᵀ q · scale. The products write into one B x N x heads x 3d gradient of qkv.
  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &qkv = saved[0], &probabilities = saved[1];
    const double scale = ctx->saved_data["scale"].toDouble();
    const auto [q, k, v] = split_heads(qkv);
    const at::Tensor dout = grad_out[0].permute({0, 2, 1, 3});  // B x heads x N x d
    at::Tensor dqkv = at::empty_like(qkv, at::MemoryFormat::Contiguous);
    const auto [dq, dk, dv] = split_heads(dqkv);
    batched_matmul_into(probabilities.transpose(-2, -1), dout, dv);
    at::Tensor dprob = at::empty_like(probabilities);
    batched_matmul_into(dout, v.transpose(-2, -1), dprob);
    at::Tensor dscores =
        at::_softmax_backward_data(dprob, probabilities, -1, probabilities.scalar_type());
    const at::Tensor dbias = dscores.sum(0);
    dscores.mul_(scale);
    batched_matmul_into(dscores, k, dq);
    batched_matmul_into(dscores.transpose(-2, -1), q, dk);
    return {dqkv, dbias, at::Tensor()};
  }
};

}  // namespace

at::Tensor window_attention(const at::Tensor& qkv, const at::Tensor& bias, double scale,
                            bool training) {
  // fp32 training on the CPU, also when recompute_stages runs it without autograd. bf16 keeps
  // ATen's operations: oneDNN's bf16 products outrun the function's fp32 ones (measured).
  if (training && qkv.device().is_cpu() && qkv.scalar_type() == at::kFloat)
    return WindowAttention::apply(qkv, bias, scale);
  const auto [q, k, v] = split_heads(qkv);
  if (!training && !at::GradMode::is_enabled())
    return attend_without_autograd(q, k, v, bias, scale, false).first;
  // In q's type: under autocast an fp32 bias would turn the scores and softmax to fp32.
  const at::Tensor attn =
      (at::matmul(q, k.transpose(-2, -1)) * scale + bias.to(q.scalar_type())).softmax(-1);
  return at::matmul(attn, v).transpose(1, 2);
}

}  // namespace sd::kernels
