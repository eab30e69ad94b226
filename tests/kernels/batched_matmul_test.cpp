// TinyViT's inference products against at::matmul and its fused attention against ATen's
// unfused one, on the strided operands they get.
#include "kernels/batched_matmul.h"

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <gtest/gtest.h>

#include "kernels/avx512_math.h"
#include "kernels/window_attention.h"

namespace sd::kernels {
namespace {

// One BLAS product per matrix, as ATen's bmm makes after copying; small products may take
// another kernel of the BLAS and round differently (measured up to 3e-6 of the largest value).
void expect_matmul(const at::Tensor& a, const at::Tensor& b, const at::Tensor& out) {
  const at::Tensor expected = at::matmul(a, b);
  const double scale = expected.abs().max().item<double>();
  EXPECT_LE((out - expected).abs().max().item<double>(), 1e-5 * scale);
}

// q, k, v as TinyViT's attention takes them: views into the qkv projection's output.
struct Windows {
  int64_t windows = 12, heads = 3, tokens = 49, key_dim = 16;
  Windows() = default;
  Windows(int64_t tokens, int64_t key_dim) : tokens(tokens), key_dim(key_dim) {}
  at::Tensor qkv = at::randn({windows, tokens, heads * 3 * key_dim});
  std::vector<at::Tensor> parts =
      qkv.view({windows, tokens, heads, -1}).split_with_sizes({key_dim, key_dim, key_dim}, 3);
  at::Tensor q() const { return parts[0].permute({0, 2, 1, 3}); }
  at::Tensor k() const { return parts[1].permute({0, 2, 1, 3}); }
  at::Tensor v() const { return parts[2].permute({0, 2, 1, 3}); }
};

TEST(BatchedMatmul, ReadsViewsAndWritesIntoAStridedLayout) {
  at::NoGradGuard no_grad;
  at::manual_seed(0);
  Windows w;
  at::Tensor scores = at::empty({w.windows, w.heads, w.tokens, w.tokens});
  kernels::batched_matmul_into(w.q(), w.k().transpose(-2, -1), scores);  // b with unit row stride
  expect_matmul(w.q(), w.k().transpose(-2, -1), scores);
  at::Tensor out = at::empty({w.windows, w.tokens, w.heads, w.key_dim});
  kernels::batched_matmul_into(scores, w.v(), out.permute({0, 2, 1, 3}));
  expect_matmul(scores, w.v(), out.permute({0, 2, 1, 3}));
  at::Tensor again = at::empty_like(scores);
  kernels::batched_matmul_into(w.k(), w.q().transpose(-2, -1).contiguous(), again);
  expect_matmul(w.k(), w.q().transpose(-2, -1), again);
}

// The decoder's prompts against the image they share: a batch of 1 on either side, read where
// it lies (a transposed view of the keys, a strided one of the queries), one product per matrix.
TEST(BatchedMatmul, ABatchOfOneBroadcastsAgainstTheOther) {
  at::NoGradGuard no_grad;
  at::manual_seed(3);
  static int products = 0;
  auto count = [](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
    if (std::string(fn.name()) == "sd::batched_matmul") ++products;
    return nullptr;
  };
  at::CallbackHandle handle = at::addThreadLocalCallback(at::RecordFunctionCallback(count));
  const at::Tensor queries = at::randn({5, 7, 2, 16}).transpose(1, 2);  // 5 prompts, 2 heads
  const at::Tensor keys = at::randn({1, 2, 300, 16}), values = at::randn({1, 2, 300, 16});
  const at::Tensor scores = kernels::batched_matmul(queries, keys.transpose(-2, -1));
  ASSERT_EQ(scores.sizes(), (at::IntArrayRef{5, 2, 7, 300}));
  expect_matmul(queries, keys.transpose(-2, -1), scores);
  expect_matmul(scores, values, kernels::batched_matmul(scores, values));
  expect_matmul(keys, queries.transpose(-2, -1),
                kernels::batched_matmul(keys, queries.transpose(-2, -1)));
  at::Tensor into = at::empty({5, 2, 7, 16});
  kernels::batched_matmul_into(scores, values, into);
  expect_matmul(scores, values, into);
  at::removeCallback(handle);
  EXPECT_EQ(products, 4);
}

TEST(BatchedMatmul, OperandsWithoutAUnitStrideAndGradientsTakeAtMatmul) {
  at::manual_seed(1);
  const at::Tensor a = at::randn({2, 3, 5, 14}).slice(3, 0, 14, 2);  // stride 2 both ways
  const at::Tensor b = at::randn({2, 3, 7, 4});
  at::Tensor out = at::empty({2, 3, 5, 4});
  kernels::batched_matmul_into(a, b, out);
  expect_matmul(a, b, out);
  const at::Tensor leaf = at::randn({2, 3, 5, 7}).requires_grad_(true);
  at::Tensor tracked = at::empty({2, 3, 5, 4});
  kernels::batched_matmul_into(leaf, b, tracked);
  tracked.sum().backward();
  ASSERT_TRUE(leaf.grad().defined());
  EXPECT_TRUE(at::allclose(leaf.grad(), b.sum(-1).unsqueeze(2).expand({2, 3, 5, 7})));
}

// softmax(q kᵀ · scale + bias) v in double, B x N x heads x d.
at::Tensor attention_in_double(const Windows& w, const at::Tensor& bias, double scale) {
  const at::Tensor q = w.q().to(at::kDouble), k = w.k().to(at::kDouble);
  const at::Tensor attn = (at::matmul(q, k.transpose(-2, -1)) * scale + bias.to(at::kDouble));
  return at::matmul(attn.softmax(-1), w.v().to(at::kDouble)).transpose(1, 2);
}

// Token counts below, at and past a register's 16 lanes (TinyViT: 49 and 196), head widths of
// one and two registers: the fp32 kernel is within rounding of the double computation; bf16
// operands are read exactly and the result rounded once to bf16.
TEST(WindowAttention, FusedIsSoftmaxOfScaledScoresPlusBiasTimesValues) {
  if (!avx512::cpu_has_avx512()) GTEST_SKIP() << "the fused kernel needs AVX-512";
  at::NoGradGuard no_grad;
  at::manual_seed(2);
  for (int64_t tokens : {7, 16, 49, 196})
    for (int64_t key_dim : {16, 32}) {
      Windows w(tokens, key_dim);
      const at::Tensor bias = at::randn({w.heads, tokens, tokens});
      const double scale = 1.0 / std::sqrt(double(key_dim));
      ASSERT_TRUE(kernels::fused_window_attention_applies(w.q(), w.k(), w.v(), bias));
      const at::Tensor expected = attention_in_double(w, bias, scale);
      const at::Tensor out = kernels::fused_window_attention(w.q(), w.k(), w.v(), bias, scale);
      ASSERT_EQ(out.sizes(), expected.sizes());
      EXPECT_LE((out.to(at::kDouble) - expected).abs().max().item<double>(), 2e-6)
          << tokens << " tokens, width " << key_dim;

      Windows half = w;
      half.parts = w.qkv.to(at::kBFloat16)
                       .view({w.windows, tokens, w.heads, -1})
                       .split_with_sizes({key_dim, key_dim, key_dim}, 3);
      const at::Tensor rounded = attention_in_double(half, bias, scale);
      const at::Tensor out16 =
          kernels::fused_window_attention(half.q(), half.k(), half.v(), bias, scale);
      ASSERT_EQ(out16.scalar_type(), at::kBFloat16);
      EXPECT_LE((out16.to(at::kDouble) - rounded).abs().max().item<double>(),
                rounded.abs().max().item<double>() / 256)
          << tokens << " tokens, width " << key_dim << ", bf16";
    }
}

// Training's attention: the output and the gradients of qkv and of the bias are those of
// ATen's operations in double, within fp32 rounding, for 49- and 196-token windows.
TEST(WindowAttention, TrainingGradientsAreTheDoublePrecisionOnes) {
  at::manual_seed(3);
  for (int64_t tokens : {49, 196}) {
    const int64_t windows = 6, heads = 2, d = 32;
    const at::Tensor qkv = at::randn({windows, tokens, heads, 3 * d}).requires_grad_(true);
    const at::Tensor bias = at::randn({heads, tokens, tokens}).requires_grad_(true);
    const at::Tensor weights = at::randn({windows, tokens, heads, d});
    const double scale = 1.0 / std::sqrt(double(d));
    const at::Tensor out = kernels::window_attention(qkv, bias, scale, /*training=*/true);
    (out * weights).sum().backward();

    const at::Tensor qkv64 = qkv.detach().to(at::kDouble).requires_grad_(true);
    const at::Tensor bias64 = bias.detach().to(at::kDouble).requires_grad_(true);
    const auto parts = qkv64.permute({0, 2, 1, 3}).split(d, -1);
    const at::Tensor attn =
        (at::matmul(parts[0], parts[1].transpose(-2, -1)) * scale + bias64).softmax(-1);
    const at::Tensor expected = at::matmul(attn, parts[2]).transpose(1, 2);
    (expected * weights.to(at::kDouble)).sum().backward();

    auto gap = [](const at::Tensor& got, const at::Tensor& want) {
      return ((got.to(at::kDouble) - want).abs().max() / want.abs().max()).item<double>();
    };
    EXPECT_LE(gap(out.detach(), expected.detach()), 1e-6) << tokens << " tokens";
    EXPECT_LE(gap(qkv.grad(), qkv64.grad()), 1e-5) << tokens << " tokens";
    EXPECT_LE(gap(bias.grad(), bias64.grad()), 1e-5) << tokens << " tokens";
  }
}

TEST(WindowAttention, GradientsOtherWidthsAndTypesAreNotFused) {
  Windows w;
  const at::Tensor bias = at::randn({w.heads, w.tokens, w.tokens});
  EXPECT_EQ(kernels::fused_window_attention_applies(w.q(), w.k(), w.v(), bias),
            avx512::cpu_has_avx512());
  EXPECT_FALSE(kernels::fused_window_attention_applies(w.q(), w.k(), w.v(), bias.to(at::kDouble)));
  EXPECT_FALSE(
      kernels::fused_window_attention_applies(w.q(), w.k(), w.v(), bias.requires_grad_(true)));
  const Windows narrow(49, 8);
  EXPECT_FALSE(kernels::fused_window_attention_applies(narrow.q(), narrow.k(), narrow.v(),
                                                       at::randn({narrow.heads, 49, 49})));
}

}  // namespace
}  // namespace sd::kernels
