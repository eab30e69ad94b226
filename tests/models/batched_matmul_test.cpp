// TinyViT's inference products against at::matmul, on the strided operands they get.
#include "models/batched_matmul.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace sd::models {
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
  batched_matmul_into(w.q(), w.k().transpose(-2, -1), scores);  // b with unit row stride
  expect_matmul(w.q(), w.k().transpose(-2, -1), scores);
  at::Tensor out = at::empty({w.windows, w.tokens, w.heads, w.key_dim});
  batched_matmul_into(scores, w.v(), out.permute({0, 2, 1, 3}));
  expect_matmul(scores, w.v(), out.permute({0, 2, 1, 3}));
  at::Tensor again = at::empty_like(scores);
  batched_matmul_into(w.k(), w.q().transpose(-2, -1).contiguous(), again);
  expect_matmul(w.k(), w.q().transpose(-2, -1), again);
}

TEST(BatchedMatmul, OperandsWithoutAUnitStrideAndGradientsTakeAtMatmul) {
  at::manual_seed(1);
  const at::Tensor a = at::randn({2, 3, 5, 14}).slice(3, 0, 14, 2);  // stride 2 both ways
  const at::Tensor b = at::randn({2, 3, 7, 4});
  at::Tensor out = at::empty({2, 3, 5, 4});
  batched_matmul_into(a, b, out);
  expect_matmul(a, b, out);
  const at::Tensor leaf = at::randn({2, 3, 5, 7}).requires_grad_(true);
  at::Tensor tracked = at::empty({2, 3, 5, 4});
  batched_matmul_into(leaf, b, tracked);
  tracked.sum().backward();
  ASSERT_TRUE(leaf.grad().defined());
  EXPECT_TRUE(at::allclose(leaf.grad(), b.sum(-1).unsqueeze(2).expand({2, 3, 5, 7})));
}

}  // namespace
}  // namespace sd::models
