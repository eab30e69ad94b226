// The inference Linear on oneDNN (kernels/onednn_linear.h) and the layer norm rounded to bf16
// for it (kernels/layer_norm.h) against double-precision sums of the same operands.
#include "kernels/onednn_linear.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "kernels/layer_norm.h"
#include "util/cpu.h"

namespace sd::kernels {
namespace {

// GELU (erf) and ReLU in double.
at::Tensor activated(const at::Tensor& y, Epilogue act) {
  if (act == Epilogue::gelu) return y * 0.5 * (1 + at::erf(y / std::sqrt(2.0)));
  if (act == Epilogue::relu) return y.clamp_min(0);
  return y;
}

// act(x wᵀ + b) (+ residual) in double from the operands as the product sees them: x and w
// rounded to `type` first.
at::Tensor expected(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                    at::ScalarType type, Epilogue act, const at::Tensor& residual) {
  const auto exact = [&](const at::Tensor& t) { return t.to(type).to(at::kDouble); };
  at::Tensor y = at::matmul(exact(x), exact(w).t());
  if (b.defined()) y = y + b.to(at::kDouble);
  y = activated(y, act);
  return residual.defined() ? y + residual.to(at::kDouble) : y;
}

// Within `relative` of the largest expected value.
void expect_close(const at::Tensor& got, const at::Tensor& want, double relative) {
  ASSERT_TRUE(got.defined());
  ASSERT_EQ(got.sizes(), want.sizes());
  const double scale = want.abs().max().item<double>();
  EXPECT_LE((got.to(at::kDouble) - want).abs().max().item<double>(), relative * scale);
}

bool bf16_products() { return cpu_has("avx512_bf16") || cpu_has("amx_bf16"); }

TEST(OnednnLinear, EveryEpilogueIsTheProductOfTheSameOperands) {
  if (!OnednnLinear::built()) GTEST_SKIP() << "built without oneDNN's headers (libdnnl-dev)";
  at::manual_seed(0);
  const at::Tensor x = at::randn({3, 37, 96}), w = at::randn({80, 96}) * 0.1, b = at::randn({80});
  const at::Tensor residual = at::randn({3, 37, 80});
  for (at::ScalarType type : {at::kFloat, at::kBFloat16}) {
    if (type == at::kBFloat16 && !bf16_products()) continue;
    // fp32 results sum in another order; bf16 outputs are rounded to 8 bits (sums with the
    // residual are fp32).
    const double plain = type == at::kFloat ? 1e-5 : 1e-2, fp32_out = 1e-5;
    for (Epilogue act : {Epilogue::none, Epilogue::gelu, Epilogue::relu})
      for (bool with_bias : {true, false})
        for (bool with_residual : {false, true}) {
          SCOPED_TRACE(std::string(type == at::kFloat ? "fp32" : "bf16") + " act " +
                       std::to_string(int(act)) + (with_bias ? " bias" : "") +
                       (with_residual ? " residual" : ""));
          OnednnLinear linear;
          const at::Tensor bias = with_bias ? b : at::Tensor();
          const at::Tensor added = with_residual ? residual : at::Tensor();
          const at::Tensor y = linear(x, w, bias, type, act, added);
          expect_close(y, expected(x, w, bias, type, act, added),
                       with_residual || type == at::kFloat ? fp32_out : plain);
          EXPECT_EQ(y.scalar_type(), with_residual ? at::kFloat : type);
          if (with_residual) {  // the sum into the residual itself
            const at::Tensor into = residual.clone();
            const at::Tensor z = linear(x, w, bias, type, act, into, {}, true);
            EXPECT_TRUE(z.is_same(into));
            expect_close(z, expected(x, w, bias, type, act, residual), fp32_out);
          }
        }
  }
}

// The bf16 weights are converted once: an in-place update of the weights (an optimiser's step)
// or other weights must reach the next product, and each row count gets its own.
TEST(OnednnLinear, UpdatedWeightsAndOtherRowCountsAreSeen) {
  if (!OnednnLinear::built()) GTEST_SKIP() << "built without oneDNN's headers (libdnnl-dev)";
  at::manual_seed(1);
  for (at::ScalarType type : {at::kFloat, at::kBFloat16}) {
    if (type == at::kBFloat16 && !bf16_products()) continue;
    const double relative = type == at::kFloat ? 1e-5 : 1e-2;
    OnednnLinear linear;
    at::Tensor w = at::randn({64, 32}), b = at::randn({64});
    const at::Tensor x = at::randn({50, 32});
    expect_close(linear(x, w, b, type, Epilogue::none), expected(x, w, b, type, Epilogue::none, {}),
                 relative);
    {
      at::NoGradGuard no_grad;
      w.mul_(-2).add_(1);
    }
    expect_close(linear(x, w, b, type, Epilogue::none), expected(x, w, b, type, Epilogue::none, {}),
                 relative);
    w = at::randn({64, 32});  // another tensor (as a module whose weight was replaced)
    expect_close(linear(x, w, b, type, Epilogue::none), expected(x, w, b, type, Epilogue::none, {}),
                 relative);
    for (int64_t rows : {1, 7, 50, 129}) {
      const at::Tensor xr = at::randn({rows, 32});
      expect_close(linear(xr, w, b, type, Epilogue::gelu),
                   expected(xr, w, b, type, Epilogue::gelu, {}), relative);
    }
  }
}

// Autograd and operands it does not take are left to LibTorch (undefined).
TEST(OnednnLinear, LeavesAutogradAndOtherOperandsToLibTorch) {
  if (!OnednnLinear::built()) GTEST_SKIP() << "built without oneDNN's headers (libdnnl-dev)";
  OnednnLinear linear;
  const at::Tensor w = at::randn({8, 4}), b = at::randn({8});
  at::Tensor x = at::randn({5, 4});
  EXPECT_TRUE(linear(x, w, b, at::kFloat, Epilogue::none).defined());
  x.requires_grad_(true);
  EXPECT_FALSE(linear(x, w, b, at::kFloat, Epilogue::none).defined());
  {
    at::NoGradGuard no_grad;
    EXPECT_TRUE(linear(x, w, b, at::kFloat, Epilogue::none).defined());
  }
  EXPECT_FALSE(linear(x.detach(), w.to(at::kDouble), b, at::kFloat, Epilogue::none).defined());
  EXPECT_FALSE(linear(x.detach(), w, b, at::kFloat, Epilogue::none, at::randn({5, 3})).defined());
}

// An MLP's hidden layer in column blocks (Chunks): the first product writes blocks of its
// output columns, the second sums the products of its input's blocks (into a new output or the
// residual); both are the whole product's values.
TEST(OnednnLinear, ColumnBlocksAreTheWholeProductsColumns) {
  if (!OnednnLinear::built()) GTEST_SKIP() << "built without oneDNN's headers (libdnnl-dev)";
  at::manual_seed(3);
  const at::Tensor x = at::randn({2, 37, 96}), w1 = at::randn({128, 96}) * 0.1;
  const at::Tensor b1 = at::randn({128}), w2 = at::randn({96, 128}) * 0.1, b2 = at::randn({96});
  const at::Tensor residual = at::randn({2, 37, 96});
  const int64_t rows = 2 * 37, chunks = 4;
  // [rows, columns] as [chunks, rows, columns / chunks] and back.
  const auto in_blocks = [&](const at::Tensor& t) {
    return t.reshape({rows, chunks, -1}).permute({1, 0, 2}).contiguous();
  };
  for (at::ScalarType type : {at::kFloat, at::kBFloat16}) {
    if (type == at::kBFloat16 && !bf16_products()) continue;
    SCOPED_TRACE(type == at::kFloat ? "fp32" : "bf16");
    OnednnLinear first, second;
    const at::Tensor hidden = first(x, w1, b1, type, Epilogue::gelu, {}, {1, chunks});
    ASSERT_TRUE(hidden.defined());
    EXPECT_EQ(hidden.sizes(), (at::IntArrayRef{chunks, rows, 32}));
    expect_close(hidden, in_blocks(expected(x, w1, b1, type, Epilogue::gelu, {})),
                 type == at::kFloat ? 1e-5 : 1e-2);
    // Sums of bf16 (or fp32) products in fp32, added block by block.
    const at::Tensor plain_hidden = at::randn({rows, 128});
    const at::Tensor y =
        second(in_blocks(plain_hidden), w2, b2, type, Epilogue::none, residual, {chunks, 1});
    expect_close(y,
                 expected(plain_hidden, w2, b2, type, Epilogue::none, residual.view({rows, 96}))
                     .view_as(residual),
                 1e-5);
    EXPECT_EQ(y.scalar_type(), at::kFloat);
    const at::Tensor into = residual.clone();
    EXPECT_TRUE(
        second(in_blocks(plain_hidden), w2, b2, type, Epilogue::none, into, {chunks, 1}, true)
            .is_same(into));
    expect_close(into, y, 1e-5);
    if (type == at::kFloat) {
      const at::Tensor summed =
          second(in_blocks(plain_hidden), w2, {}, type, Epilogue::none, {}, {chunks, 1});
      expect_close(summed, expected(plain_hidden, w2, {}, type, Epilogue::none, {}), 1e-5);
    }
    // Not run: an activation after summed blocks, a residual with output blocks, blocks that do
    // not divide the columns, a bf16 sum without an fp32 output.
    EXPECT_FALSE(
        second(in_blocks(plain_hidden), w2, b2, type, Epilogue::relu, residual, {chunks, 1})
            .defined());
    EXPECT_FALSE(
        first(x, w1, b1, type, Epilogue::gelu, at::randn({rows, 128}), {1, chunks}).defined());
    EXPECT_FALSE(first(x, w1, b1, type, Epilogue::gelu, {}, {1, 3}).defined());
    if (type == at::kBFloat16) {
      EXPECT_FALSE(
          second(in_blocks(plain_hidden), w2, b2, type, Epilogue::none, {}, {chunks, 1}).defined());
    }
  }
  EXPECT_EQ(OnednnLinear::hidden_chunks(3072, at::kBFloat16), 3);
  EXPECT_EQ(OnednnLinear::hidden_chunks(5120, at::kBFloat16), 5);
  EXPECT_EQ(OnednnLinear::hidden_chunks(1280, at::kBFloat16), 2);
  EXPECT_EQ(OnednnLinear::hidden_chunks(1024, at::kBFloat16), 1);
  EXPECT_EQ(OnednnLinear::hidden_chunks(3072, at::kFloat), 1);
}

TEST(LayerNormToBf16, IsTheFp32NormRoundedOnce) {
  if (!cpu_has("avx512f") || !cpu_has("avx512_bf16")) GTEST_SKIP() << "no AVX512-BF16 here";
  at::manual_seed(2);
  for (int64_t n : {768, 100}) {  // a multiple of 16 and a row with a partial register
    const at::Tensor x = at::randn({2, 9, n}) * 3 + 1, w = at::randn({n}), b = at::randn({n});
    const at::Tensor got = layer_norm_to_bf16(x, w, b, 1e-6);
    ASSERT_TRUE(got.defined());
    EXPECT_EQ(got.scalar_type(), at::kBFloat16);
    const at::Tensor want =
        at::layer_norm(x.to(at::kDouble), {n}, w.to(at::kDouble), b.to(at::kDouble), 1e-6);
    // One rounding to bf16 (2^-9 relative) of values the fp32 statistics move by ~1e-6.
    const at::Tensor error = (got.to(at::kDouble) - want).abs();
    EXPECT_TRUE(at::all(error <= want.abs() * (1.0 / 256) + 1e-5).item<bool>());
    // The same values LibTorch's fp32 norm rounds to, but for a few ties of the rounding.
    const at::Tensor aten = at::layer_norm(x, {n}, w, b, 1e-6).to(at::kBFloat16);
    EXPECT_LE((got != aten).sum().item<int64_t>(), x.numel() / 100);
  }
  EXPECT_FALSE(
      layer_norm_to_bf16(at::randn({3, 8}).t(), at::randn({3}), at::randn({3}), 1e-6).defined());
}

}  // namespace
}  // namespace sd::kernels
