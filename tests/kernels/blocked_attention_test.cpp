// The blocked rel-pos attention (the ViT's attention on CPUs without AVX-512) against the
// MViTv2 formula in double, on q, k and v as the qkv projection leaves them.
#include "kernels/blocked_attention.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>
#include <string>

#include "kernels/window_attention.h"

namespace sd::kernels {
namespace {

bool cpu_runs_it() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

// q, k, v: B x heads x (h*w) x d views of a B x (h*w) x 3 x heads x d projection; tables
// h x h x d and w x w x d.
struct Problem {
  int64_t batch, heads, h, w, d;
  at::Tensor qkv = at::randn({batch, h* w, 3, heads, d});
  at::Tensor rel_h = at::randn({h, h, d}), rel_w = at::randn({w, w, d});
  at::Tensor part(int64_t i) const { return qkv.select(2, i).transpose(1, 2); }
  double scale() const { return 1.0 / std::sqrt(double(d)); }
};

// softmax(q kᵀ · scale + q . rel_h[th][kh] + q . rel_w[tw][kw]) v in double, B x N x heads x d.
at::Tensor expected(const Problem& p) {
  const at::Tensor q = p.part(0).to(at::kDouble), k = p.part(1).to(at::kDouble),
                   v = p.part(2).to(at::kDouble);
  const at::Tensor grid = q.reshape({p.batch, p.heads, p.h, p.w, p.d});
  const at::Tensor rh = at::einsum("bnhwc,hkc->bnhwk", {grid, p.rel_h.to(at::kDouble)});
  const at::Tensor rw = at::einsum("bnhwc,wkc->bnhwk", {grid, p.rel_w.to(at::kDouble)});
  const at::Tensor scores = (at::matmul(q, k.transpose(-2, -1)) * p.scale())
                                .view({p.batch, p.heads, p.h, p.w, p.h, p.w}) +
                            rh.unsqueeze(-1) + rw.unsqueeze(-2);
  const int64_t n = p.h * p.w;
  return at::matmul(scores.view({p.batch, p.heads, n, n}).softmax(-1), v).transpose(1, 2);
}

at::Tensor blocked(const Problem& p) {
  return blocked_rel_pos_attention(p.part(0), p.part(1), p.part(2), p.rel_h, p.rel_w, p.scale());
}

// SAM's 14 x 14 windows (d 64, as ViT-B/L: three blocks of rows, 12 padding keys), a grid whose
// rows fill no register (5 x 9, d 8: one register of outputs), and 37 x 23 tokens: nine blocks of
// rows (the last part-filled), four chunks of keys whose edges cut key rows, d 40 (two registers
// of outputs and one).
TEST(BlockedAttention, IsTheRelPosAttentionInDouble) {
  if (!cpu_runs_it()) GTEST_SKIP() << "this CPU has no AVX2 and FMA: the kernel does not run";
  at::NoGradGuard no_grad;
  at::manual_seed(7);
  for (const Problem& p :
       {Problem{3, 2, 14, 14, 64}, Problem{2, 3, 5, 9, 8}, Problem{1, 2, 37, 23, 40}}) {
    SCOPED_TRACE(std::to_string(p.h) + "x" + std::to_string(p.w) + ", d " + std::to_string(p.d));
    ASSERT_TRUE(blocked_attention_applies(p.part(0), p.part(1), p.part(2)));
    const at::Tensor ours = blocked(p), reference = expected(p);
    ASSERT_EQ(ours.sizes(), reference.sizes());
    EXPECT_LE((ours.to(at::kDouble) - reference).abs().max().item<double>(),
              1e-5 * reference.abs().max().item<double>());
  }
}

// TinyViT's window attention (a bias table per head) against ATen's in double, alone and through
// window_attention's inference: TinyViT-5M's 7 x 7 windows (d 32) and 14 x 14 ones, and 300
// tokens (two chunks of keys, four blocks of rows) of d 24.
TEST(BlockedAttention, IsTinyVitsBiasedAttentionInDouble) {
  if (!cpu_runs_it()) GTEST_SKIP() << "this CPU has no AVX2 and FMA: the kernel does not run";
  at::NoGradGuard no_grad;
  at::manual_seed(11);
  for (const auto& [batch, heads, n, d] :
       {std::array<int64_t, 4>{5, 2, 49, 32}, {2, 5, 196, 32}, {1, 3, 300, 24}}) {
    SCOPED_TRACE(std::to_string(n) + " tokens, d " + std::to_string(d));
    const at::Tensor qkv = at::randn({batch, n, heads, 3 * d}), bias = at::randn({heads, n, n});
    const at::Tensor q = qkv.narrow(3, 0, d).transpose(1, 2),
                     k = qkv.narrow(3, d, d).transpose(1, 2),
                     v = qkv.narrow(3, 2 * d, d).transpose(1, 2);
    const double scale = 1.0 / std::sqrt(double(d));
    ASSERT_TRUE(blocked_attention_applies(q, k, v));
    const at::Tensor reference =
        at::matmul((at::matmul(q.to(at::kDouble), k.to(at::kDouble).transpose(-2, -1)) * scale +
                    bias.to(at::kDouble))
                       .softmax(-1),
                   v.to(at::kDouble))
            .transpose(1, 2);
    const double tolerance = 1e-5 * reference.abs().max().item<double>();
    const at::Tensor ours = blocked_biased_attention(q, k, v, bias, scale);
    ASSERT_EQ(ours.sizes(), reference.sizes());
    EXPECT_LE((ours.to(at::kDouble) - reference).abs().max().item<double>(), tolerance);
    // window_attention's inference (the fused AVX-512 kernel where it runs, this one elsewhere).
    const at::Tensor served = window_attention(qkv, bias, scale, false);
    EXPECT_LE((served.to(at::kDouble) - reference).abs().max().item<double>(), tolerance);
  }
}

// A NaN in a query makes that query's row NaN, as ATen's softmax does, and no other row.
TEST(BlockedAttention, ANanStaysInItsRow) {
  if (!cpu_runs_it()) GTEST_SKIP() << "this CPU has no AVX2 and FMA: the kernel does not run";
  at::NoGradGuard no_grad;
  Problem p{1, 1, 6, 7, 16};
  p.qkv[0][11][0][0][3] = std::numeric_limits<float>::quiet_NaN();
  const at::Tensor out = blocked(p);
  EXPECT_TRUE(out[0][11].isnan().all().item<bool>());
  EXPECT_EQ(out.isnan().sum().item<int64_t>(), p.d);
}

// Training (autograd), bf16 operands and head widths that are no multiple of 8 go to ATen.
TEST(BlockedAttention, DeclinesWhatItDoesNotCompute) {
  if (!cpu_runs_it()) GTEST_SKIP() << "this CPU has no AVX2 and FMA: the kernel does not run";
  Problem p{1, 2, 4, 4, 16};
  EXPECT_TRUE(blocked_attention_applies(p.part(0), p.part(1), p.part(2)));
  const at::Tensor trained = p.qkv.clone().requires_grad_();
  const at::Tensor q = trained.select(2, 0).transpose(1, 2);
  EXPECT_FALSE(blocked_attention_applies(q, p.part(1), p.part(2)));
  const at::Tensor bf16 = p.qkv.to(at::kBFloat16);
  EXPECT_FALSE(blocked_attention_applies(bf16.select(2, 0).transpose(1, 2),
                                         bf16.select(2, 1).transpose(1, 2),
                                         bf16.select(2, 2).transpose(1, 2)));
  Problem odd{1, 2, 4, 4, 12};
  EXPECT_FALSE(blocked_attention_applies(odd.part(0), odd.part(1), odd.part(2)));
}

}  // namespace
}  // namespace sd::kernels
