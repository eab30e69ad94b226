// The mask decoder's product of its upscaled image with the hypernetworks' outputs, against the
// same product in double (its place in the decoder: tests/models/predictor_test.cpp).
#include "kernels/mask_products.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include "kernels/avx2.h"

namespace sd::kernels {
namespace {

// Pixels in whole groups of 8 and not (P 37: four groups and a tail of 5), blocks of tasks
// (P 300: three), 1 to 4 masks, 8 to 40 features.
TEST(MaskProducts, AreTheProductInDouble) {
  if (!cpu_has_avx2_fma()) GTEST_SKIP() << "no AVX2 and FMA here";
  at::NoGradGuard no_grad;
  at::manual_seed(0);
  for (const auto& [P, M, C] : std::vector<std::array<int64_t, 3>>{
           {37, 3, 32}, {300, 4, 32}, {8, 1, 8}, {129, 2, 40}, {5, 3, 16}}) {
    const at::Tensor image = at::randn({3, P, C}), hyper = at::randn({3, M, C});
    ASSERT_TRUE(mask_products_apply(image, hyper));
    const at::Tensor out = mask_products(image, hyper);
    ASSERT_EQ(out.sizes(), (at::IntArrayRef{3, M, P}));
    const at::Tensor exact =
        at::matmul(hyper.to(at::kDouble), image.to(at::kDouble).transpose(1, 2));
    // fp32 sums of C products: within C float roundings of the sum of their magnitudes.
    const at::Tensor bound =
        at::matmul(hyper.abs().to(at::kDouble), image.abs().to(at::kDouble).transpose(1, 2)) *
        (C * 6e-8);
    EXPECT_TRUE(((out.to(at::kDouble) - exact).abs() <= bound).all().item<bool>())
        << P << " x " << M << " x " << C;
  }
  // Not for autograd, other types, widths that are no multiple of 8 or strided operands.
  const at::Tensor image = at::randn({1, 16, 32}), hyper = at::randn({1, 3, 32});
  EXPECT_TRUE(mask_products_apply(image, hyper));
  {
    at::AutoGradMode grad(true);
    EXPECT_FALSE(mask_products_apply(image.clone().requires_grad_(), hyper));
  }
  EXPECT_FALSE(mask_products_apply(image.to(at::kDouble), hyper.to(at::kDouble)));
  EXPECT_FALSE(mask_products_apply(at::randn({1, 16, 12}), at::randn({1, 3, 12})));
  EXPECT_FALSE(mask_products_apply(at::randn({1, 32, 16}).transpose(1, 2), hyper));
}

}  // namespace
}  // namespace sd::kernels
