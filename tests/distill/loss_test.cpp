#include "distill/loss.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace sd::distill {
namespace {

TEST(DistillLoss, MaskedLossLeavesThePaddingOut) {
  at::manual_seed(0);
  at::Tensor teacher = at::randn({2, 4, 64, 64});
  at::Tensor student = teacher.clone();
  // Image 0 covers 1024x512 (32 columns of cells), image 1 the whole frame; only padding differs.
  student[0].narrow(2, 32, 32).add_(5.0);
  std::vector<models::Size2> sizes = {{1024, 512}, {1024, 1024}};
  EXPECT_FLOAT_EQ(masked_embedding_mse(student, teacher, sizes).item<float>(), 0.0f);
  EXPECT_GT(embedding_mse(student, teacher).item<float>(), 1.0f);
  // Full images: the masked loss is the plain MSE.
  at::Tensor noisy = teacher + at::randn_like(teacher);
  std::vector<models::Size2> full = {{1024, 1024}, {1024, 1024}};
  EXPECT_NEAR(masked_embedding_mse(noisy, teacher, full).item<float>(),
              embedding_mse(noisy, teacher).item<float>(), 1e-6);
  // A partly covered cell (683 rows -> 42.7 cells) counts: 43 rows of cells.
  at::Tensor one = at::zeros({1, 1, 64, 64});
  at::Tensor ref = at::ones({1, 1, 64, 64});
  std::vector<models::Size2> tall = {{683, 1024}};
  EXPECT_FLOAT_EQ(masked_embedding_mse(one, ref, tall).item<float>(), 1.0f);
}

}  // namespace
}  // namespace sd::distill
