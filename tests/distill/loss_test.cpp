#include "distill/loss.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/functional/loss.h>

namespace sd::distill {
namespace {

using train::EmbeddingLoss;
namespace F = torch::nn::functional;

constexpr EmbeddingLoss kLosses[] = {EmbeddingLoss::mse, EmbeddingLoss::huber, EmbeddingLoss::l1};

TEST(DistillLoss, MaskedLossLeavesThePaddingOut) {
  for (EmbeddingLoss kind : kLosses) {
    SCOPED_TRACE(word(kind));
    at::manual_seed(0);
    at::Tensor teacher = at::randn({2, 4, 64, 64});
    at::Tensor student = teacher.clone();
    // Image 0 covers 1024x512 (32 columns of cells), image 1 the whole frame; only padding
    // differs.
    student[0].narrow(2, 32, 32).add_(5.0);
    std::vector<models::Size2> sizes = {{1024, 512}, {1024, 1024}};
    EXPECT_FLOAT_EQ(masked_embedding_loss(student, teacher, sizes, kind).item<float>(), 0.0f);
    EXPECT_GT(embedding_loss(student, teacher, kind).item<float>(), 1.0f);
    // Full images: the masked loss is the plain one.
    at::Tensor noisy = teacher + at::randn_like(teacher);
    std::vector<models::Size2> full = {{1024, 1024}, {1024, 1024}};
    EXPECT_NEAR(masked_embedding_loss(noisy, teacher, full, kind).item<float>(),
                embedding_loss(noisy, teacher, kind).item<float>(), 1e-6);
    // A partly covered cell (683 rows -> 42.7 cells) counts: 43 rows of cells.
    at::Tensor one = at::zeros({1, 1, 64, 64});
    at::Tensor ref = at::full({1, 1, 64, 64}, 2.0);
    ref.narrow(2, 43, 21).fill_(100.0);
    std::vector<models::Size2> tall = {{683, 1024}};
    const float per_cell = kind == EmbeddingLoss::mse     ? 4.0f
                           : kind == EmbeddingLoss::huber ? 1.5f
                                                          : 2.0f;
    EXPECT_FLOAT_EQ(masked_embedding_loss(one, ref, tall, kind).item<float>(), per_cell);
  }
}

// Differences on both sides of Huber's delta (1): each loss is its definition, and LibTorch's
// functional loss of that name.
TEST(DistillLoss, EachLossIsItsDefinition) {
  at::Tensor teacher = at::zeros({1, 2, 2, 2});
  at::Tensor student =
      at::tensor({0.5f, -0.5f, 2.0f, -3.0f, 0.0f, 1.0f, -0.25f, 4.0f}).view({1, 2, 2, 2});
  const double sq = (0.25 + 0.25 + 4 + 9 + 0 + 1 + 0.0625 + 16) / 8;
  const double abs = (0.5 + 0.5 + 2 + 3 + 0 + 1 + 0.25 + 4) / 8;
  // 0.5 d^2 where |d| < 1, else |d| - 0.5.
  const double huber = (0.125 + 0.125 + 1.5 + 2.5 + 0 + 0.5 + 0.03125 + 3.5) / 8;
  EXPECT_DOUBLE_EQ(embedding_loss(student, teacher, EmbeddingLoss::mse).item<double>(), sq);
  EXPECT_DOUBLE_EQ(embedding_loss(student, teacher, EmbeddingLoss::l1).item<double>(), abs);
  EXPECT_DOUBLE_EQ(embedding_loss(student, teacher, EmbeddingLoss::huber).item<double>(), huber);

  at::manual_seed(1);
  at::Tensor s = at::randn({2, 8, 16, 16}) * 2, t = at::randn({2, 8, 16, 16});
  EXPECT_TRUE(at::allclose(embedding_loss(s, t, EmbeddingLoss::mse), F::mse_loss(s, t)));
  EXPECT_TRUE(at::allclose(embedding_loss(s, t, EmbeddingLoss::l1), F::l1_loss(s, t)));
  EXPECT_TRUE(at::allclose(embedding_loss(s, t, EmbeddingLoss::huber), F::huber_loss(s, t)));
  EXPECT_TRUE(at::allclose(embedding_loss(s, t, EmbeddingLoss::huber), F::smooth_l1_loss(s, t)))
      << "with delta 1, Huber is smooth L1";
}

// bf16 embeddings (autocast) are compared in float32.
TEST(DistillLoss, ReducedPrecisionInputsGiveAFloatLoss) {
  at::Tensor s = at::ones({1, 1, 2, 2}, at::kBFloat16), t = at::zeros({1, 1, 2, 2});
  for (EmbeddingLoss kind : kLosses)
    EXPECT_EQ(embedding_loss(s, t, kind).scalar_type(), at::kFloat) << word(kind);
}

}  // namespace
}  // namespace sd::distill
