#include "models/bf16_products.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/version.h>

#include <cstdlib>

#include "models/autocast.h"
#include "models/encoder_testing.h"

namespace sd::models {
namespace {

at::Tensor rounded(const at::Tensor& t) { return t.to(at::kBFloat16).to(at::kFloat); }

using encoder_testing::relative_error;

// The products autocast lowers to bf16, each of 2,304-3,072 terms a result: whatever the CPU,
// within the result's own rounding to bf16 (2^-9 relative at most, about 0.17% in L2 here) of
// the exact product of the bf16-rounded operands. LibTorch 1.13's generic bf16 products, which
// run on CPUs without AVX-512, sum in bf16 and miss it by 3-6% at these lengths.
TEST(Bf16Products, SumInFp32OnEveryCpu) {
  at::manual_seed(0);
  const at::Tensor a = at::randn({256, 3072}), b = at::randn({3072, 128}), bias = at::randn({128});
  const at::Tensor batch = at::randn({4, 64, 3072});
  const at::Tensor image = at::randn({1, 256, 12, 12}), kernel = at::randn({32, 256, 3, 3});
  at::Tensor mm, matmul, linear, bmm, conv;
  {
    AutocastScope autocast(Amp::bf16, at::kCPU);
    mm = at::mm(a, b);
    matmul = at::matmul(batch, b);
    linear = at::linear(a, b.t(), bias);
    bmm = at::bmm(batch, b.expand({4, 3072, 128}));
    conv = at::conv2d(image, kernel, {}, 1, 1);
  }
  for (const at::Tensor& t : {mm, matmul, linear, bmm, conv})
    EXPECT_EQ(t.scalar_type(), at::kBFloat16);
  const at::Tensor exact_mm = at::mm(rounded(a).to(at::kDouble), rounded(b).to(at::kDouble));
  const at::Tensor exact_batch =
      at::matmul(rounded(batch).to(at::kDouble), rounded(b).to(at::kDouble));
  constexpr double kBf16Rounding = 0.003;
  EXPECT_LT(relative_error(mm, exact_mm), kBf16Rounding);
  EXPECT_LT(relative_error(matmul, exact_batch), kBf16Rounding);
  EXPECT_LT(relative_error(bmm, exact_batch), kBf16Rounding);
  EXPECT_LT(relative_error(linear, exact_mm + rounded(bias).to(at::kDouble)), kBf16Rounding);
  const at::Tensor exact_conv =
      at::conv2d(rounded(image).to(at::kDouble), rounded(kernel).to(at::kDouble), {}, 1, 1);
  EXPECT_LT(relative_error(conv, exact_conv), kBf16Rounding);
}

// Where bf16_products_in_fp32() (forced here, as on CPUs without AVX-512): the product is
// LibTorch's fp32 product of the rounded operands, rounded once; what autocast leaves alone
// (doubles, the products it keeps in fp32, work outside a scope) stays as it was, and gradients
// come back to the fp32 leaves through the same roundings.
TEST(Bf16Products, AreFp32ProductsOfTheRoundedOperandsWhereAsked) {
  ASSERT_EQ(setenv("SAMDISTILL_BF16_PRODUCTS", "fp32", 1), 0);
  ASSERT_TRUE(bf16_products_in_fp32());
  at::manual_seed(1);
  const at::Tensor a = at::randn({64, 300}).requires_grad_(), b = at::randn({300, 48});
  const at::Tensor bias = at::randn({48}), image = at::randn({2, 8, 9, 9});
  const at::Tensor kernel = at::randn({5, 8, 3, 3}), d = at::randn({16, 16}, at::kDouble);
  at::Tensor mm, linear, conv, doubles, transposed;
  {
    AutocastScope autocast(Amp::bf16, at::kCPU);
    mm = at::mm(a, b);
    linear = at::linear(a, b.t(), bias);
    conv = at::conv2d(image, kernel, bias.narrow(0, 0, 5), 2);
    doubles = at::mm(d, d);
    transposed = at::conv_transpose2d(image, kernel.transpose(0, 1));
  }
  EXPECT_TRUE(at::equal(mm, at::mm(rounded(a), rounded(b)).to(at::kBFloat16)));
  EXPECT_TRUE(
      at::equal(linear, at::linear(rounded(a), rounded(b.t()), rounded(bias)).to(at::kBFloat16)));
  EXPECT_TRUE(
      at::equal(conv, at::conv2d(rounded(image), rounded(kernel), rounded(bias.narrow(0, 0, 5)), 2)
                          .to(at::kBFloat16)));
  EXPECT_EQ(doubles.scalar_type(), at::kDouble);
  EXPECT_TRUE(at::equal(doubles, at::mm(d, d)));
#if TORCH_VERSION_MAJOR < 2
  // LibTorch 1.13's CPU autocast keeps transposed convolutions in fp32, and so they stay.
  EXPECT_EQ(transposed.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(transposed, at::conv_transpose2d(image, kernel.transpose(0, 1))));
#endif
  EXPECT_EQ(at::mm(a, b).scalar_type(), at::kFloat);  // no scope, no rounding

  mm.to(at::kFloat).sum().backward();
  ASSERT_TRUE(a.grad().defined());
  EXPECT_EQ(a.grad().scalar_type(), at::kFloat);
  // d(sum)/da = ones . rounded(b)ᵀ: a row sum of b's rounded values, rounded to bf16 on the way.
  const at::Tensor row_sums = rounded(b).sum(1);
  EXPECT_LT(relative_error(a.grad()[0], row_sums), 0.003);
  ASSERT_EQ(unsetenv("SAMDISTILL_BF16_PRODUCTS"), 0);
}

}  // namespace
}  // namespace sd::models
