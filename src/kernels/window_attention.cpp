#include "kernels/window_attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <c10/util/BFloat16.h>
#include <torch/csrc/autograd/custom_function.h>

#include <array>
#include <limits>
#include <utility>
#include <vector>

#include "kernels/avx512_math.h"
#include "kernels/batched_matmul.h"

namespace sd::kernels {
namespace {

using avx512::exp16;
using avx512::kLanes;
using avx512::padded;
using avx512::tail_mask;

constexpr int kRows = 8;  // query rows per block: 8 independent FMA chains

// One window and head in fp32: kᵀ repacked d x np (columns past N zero); q and v read in
// place (fp32) or from a converted copy (bf16), rows q_stride and v_stride apart.
struct Window {
  int64_t n = 0, np = 0, d = 0;
  std::vector<float> kt, scores;  // scores: kRows x np
  const float* q = nullptr;
  const float* v = nullptr;
  int64_t q_stride = 0, v_stride = 0;
};

// scores[r] = q[r] . kᵀ for R rows of q.
template <int R>
SD_AVX512 void score_rows(const float* q, Window& w) {
  for (int64_t j = 0; j < w.np; j += kLanes) {
    __m512 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t c = 0; c < w.d; ++c) {
      const __m512 kc = _mm512_loadu_ps(&w.kt[c * w.np + j]);
      for (int r = 0; r < R; ++r)
        acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(q[r * w.q_stride + c]), kc, acc[r]);
    }
    for (int r = 0; r < R; ++r) _mm512_storeu_ps(&w.scores[r * w.np + j], acc[r]);
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

// out[r] = probabilities[r] . v for R rows, 16 of the d columns at a time; `out` rows are
// out_stride apart.
template <int R>
SD_AVX512 void weigh_values(const Window& w, float* out, int64_t out_stride) {
  for (int64_t c = 0; c < w.d; c += kLanes) {
    __m512 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t j = 0; j < w.n; ++j) {
      const __m512 vj = _mm512_loadu_ps(w.v + j * w.v_stride + c);
      for (int r = 0; r < R; ++r)
        acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(w.scores[r * w.np + j]), vj, acc[r]);
    }
    for (int r = 0; r < R; ++r) _mm512_storeu_ps(out + r * out_stride + c, acc[r]);
  }
}

// R rows of one window and head, from row `i`: output rows (R x d, fp32) out.
template <int R>
void attend_rows(Window& w, int64_t i, const float* bias, float scale, float* out,
                 int64_t out_stride) {
  score_rows<R>(w.q + i * w.q_stride, w);
  for (int r = 0; r < R; ++r)
    softmax_row(&w.scores[r * w.np], bias + (i + r) * w.n, w.n, w.np, scale);
  weigh_values<R>(w, out, out_stride);
}

// Rows [i, i + rows) for 1 <= rows <= kRows.
void attend_block(Window& w, int64_t i, int rows, const float* bias, float scale, float* out,
                  int64_t out_stride) {
  using Block = void (*)(Window&, int64_t, const float*, float, float*, int64_t);
  static constexpr Block blocks[kRows] = {attend_rows<1>, attend_rows<2>, attend_rows<3>,
                                          attend_rows<4>, attend_rows<5>, attend_rows<6>,
                                          attend_rows<7>, attend_rows<8>};
  blocks[rows - 1](w, i, bias, scale, out, out_stride);
}

// n x d rows `row_stride` apart, converted into `to` (n x d, contiguous).
template <class T>
const float* as_floats(const T* rows, int64_t row_stride, int64_t n, int64_t d,
                       std::vector<float>& to) {
  if constexpr (std::is_same_v<T, float>) return rows;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t c = 0; c < d; ++c) to[j * d + c] = float(rows[j * row_stride + c]);
  return to.data();
}

// w.kt = kᵀ for the window's n x d keys, rows `row_stride` apart: 16 keys at a time gathered
// down each column.
SD_AVX512 void transpose_keys(const float* k, int64_t row_stride, Window& w) {
  const __m512i rows =
      _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                         _mm512_set1_epi32(int(row_stride)));
  const __mmask16 last = tail_mask(w.n);
  for (int64_t j = 0; j < w.np; j += kLanes) {
    const __mmask16 m = j + kLanes < w.np ? __mmask16(0xFFFF) : last;
    for (int64_t c = 0; c < w.d; ++c)
      _mm512_storeu_ps(&w.kt[c * w.np + j],
                       _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, rows,
                                                k + j * row_stride + c, sizeof(float)));
  }
}

// out = softmax(q kᵀ · scale + bias) v; the softmax also into `probabilities`
// (B x heads x N x N, contiguous) when it is defined.
template <class T>
void attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
            float scale, at::Tensor& out, const at::Tensor& probabilities) {
  const int64_t batch = q.size(0), heads = q.size(1), n = q.size(2), d = q.size(3);
  const int64_t out_row = heads * d;  // out: B x N x heads x d, contiguous
  constexpr bool fp32 = std::is_same_v<T, float>;
  const T* pq = q.data_ptr<T>();
  const T* pk = k.data_ptr<T>();
  const T* pv = v.data_ptr<T>();
  const float* pbias = bias.data_ptr<float>();
  T* pout = out.data_ptr<T>();
  float* pprob = probabilities.defined() ? probabilities.data_ptr<float>() : nullptr;
  const int64_t k_stride = k.stride(2);
  at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {
    Window w;
    w.n = n, w.np = padded(n), w.d = d;
    w.kt.resize(d * w.np), w.scores.resize(kRows * w.np);
    w.q_stride = fp32 ? q.stride(2) : d, w.v_stride = fp32 ? v.stride(2) : d;
    std::vector<float> q16(fp32 ? 0 : n * d), k16(q16.size()), v16(q16.size());
    std::vector<float> rows(fp32 ? 0 : kRows * d);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / heads, h = task % heads;
      const T* k_rows = pk + b * k.stride(0) + h * k.stride(1);
      transpose_keys(as_floats(k_rows, k_stride, n, d, k16), fp32 ? k_stride : d, w);
      w.q = as_floats(pq + b * q.stride(0) + h * q.stride(1), q.stride(2), n, d, q16);
      w.v = as_floats(pv + b * v.stride(0) + h * v.stride(1), v.stride(2), n, d, v16);
      const float* head_bias = pbias + h * n * n;
      for (int64_t i = 0; i < n; i += kRows) {
        const int count = int(std::min<int64_t>(kRows, n - i));
        T* out_rows = pout + (b * n + i) * out_row + h * d;
        if constexpr (fp32) {
          attend_block(w, i, count, head_bias, scale, out_rows, out_row);
        } else {
          attend_block(w, i, count, head_bias, scale, rows.data(), d);
          for (int r = 0; r < count; ++r)
            for (int64_t c = 0; c < d; ++c) out_rows[r * out_row + c] = T(rows[r * d + c]);
        }
        if (pprob)
          for (int r = 0; r < count; ++r)
            std::copy_n(&w.scores[r * w.np], n, pprob + ((task * n) + i + r) * n);
      }
    }
  });
}

}  // namespace

bool fused_window_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& bias) {
  const at::ScalarType type = q.scalar_type();
  const bool typed = (type == at::kFloat || type == at::kBFloat16) && k.scalar_type() == type &&
                     v.scalar_type() == type && bias.scalar_type() == at::kFloat;
  const bool autograd = at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() ||
                                                       v.requires_grad() || bias.requires_grad());
  const bool shaped = q.dim() == 4 && k.sizes() == q.sizes() && v.sizes() == q.sizes() &&
                      bias.sizes() == at::IntArrayRef{q.size(1), q.size(2), q.size(2)};
  return avx512::cpu_has_avx512() && typed && !autograd && shaped && q.device().is_cpu() &&
         q.size(3) % kLanes == 0 && q.stride(3) == 1 && k.stride(3) == 1 && v.stride(3) == 1 &&
         k.stride(2) == v.stride(2) && bias.is_contiguous();
}

at::Tensor fused_window_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const at::Tensor& bias, double scale,
                                  const at::Tensor& probabilities) {
  // Seen by profilers and bench's FLOP count as one operation of inputs (q, k, v).
  const std::vector<c10::IValue> inputs{q, k, v};
  RECORD_FUNCTION("sd::window_attention", inputs);
  at::Tensor out = at::empty({q.size(0), q.size(2), q.size(1), q.size(3)}, q.options());
  if (q.scalar_type() == at::kFloat)
    attend<float>(q, k, v, bias, float(scale), out, probabilities);
  else
    attend<c10::BFloat16>(q, k, v, bias, float(scale), out, probabilities);
  return out;
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
  if (fused_window_attention_applies(q, k, v, bias)) {
    at::Tensor probabilities;
    if (keep_softmax)
      probabilities = at::empty({batch, heads, n, n}, q.options().dtype(at::kFloat));
    at::Tensor out = fused_window_attention(q, k, v, bias, scale, probabilities);
    return {out, probabilities};
  }
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
