// SyncBatchNorm on two ranks (threads on loopback), each with half of a batch, against torch's
// BatchNorm of the whole batch: outputs, gradients and running statistics.
#include "distributed/sync_batch_norm.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <future>

#include "distributed/loopback_world.h"

namespace sd::distributed {
namespace {

struct Pass {
  at::Tensor y, grad_x, grad_weight, grad_bias, running_mean, running_var;
};

struct Batch {
  at::Tensor x, weight, bias, dy;  // dy: the gradient of the output (loss = sum(y * dy))
};

// `norm` of x[first, first + n) with fresh running statistics, then its backward.
template <class Norm>
Pass pass(const Batch& b, int64_t first, int64_t n, Norm norm) {
  const at::Tensor x = b.x.slice(0, first, first + n).clone().requires_grad_();
  const at::Tensor weight = b.weight.clone().requires_grad_();
  const at::Tensor bias = b.bias.clone().requires_grad_();
  const at::Tensor mean = at::zeros({b.x.size(1)}), var = at::ones({b.x.size(1)});
  const at::Tensor y = norm(x, weight, bias, mean, var);
  (y * b.dy.slice(0, first, first + n)).sum().backward();
  return {y.detach(), x.grad(), weight.grad(), bias.grad(), mean, var};
}

Pass half(const Batch& b, int rank, int port) {
  std::unique_ptr<Group> g =
      connect(loopback_world(rank, port), GroupOptions{std::chrono::seconds(20)});
  const int64_t n = b.x.size(0) / 2;
  return pass(b, rank * n, n, [&](auto x, auto w, auto bias, auto mean, auto var) {
    return sync_batch_norm(*g, x, w, bias, mean, var, 0.1, 1e-5);
  });
}

void expect_close(const at::Tensor& a, const at::Tensor& b, const char* what) {
  EXPECT_TRUE(at::allclose(a, b, 1e-5, 1e-5))
      << what << ": largest difference " << (a - b).abs().max().item<double>();
}

TEST(SyncBatchNorm, TwoHalvesOfABatchAreTheWholeBatch) {
  if (!supported()) GTEST_SKIP() << "this build has no distributed support";
  at::manual_seed(3);
  const Batch b{at::randn({4, 3, 5, 6}) * 2 + 3, at::rand({3}) + 0.5, at::randn({3}),
                at::randn({4, 3, 5, 6})};
  const Pass whole = pass(b, 0, 4, [](auto x, auto w, auto bias, auto mean, auto var) {
    return at::batch_norm(x, w, bias, mean, var, true, 0.1, 1e-5, false);
  });
  const int port = free_port();
  auto other = std::async(std::launch::async, half, b, 1, port);
  const Pass zero = half(b, 0, port), one = other.get();
  expect_close(at::cat({zero.y, one.y}), whole.y, "output");
  expect_close(at::cat({zero.grad_x, one.grad_x}), whole.grad_x, "input's gradient");
  // Each rank's share of the weight's and bias's gradients; the gradient all-reduce sums them.
  expect_close(zero.grad_weight + one.grad_weight, whole.grad_weight, "weight's gradient");
  expect_close(zero.grad_bias + one.grad_bias, whole.grad_bias, "bias's gradient");
  for (const Pass* p : {&zero, &one}) {
    expect_close(p->running_mean, whole.running_mean, "running mean");
    expect_close(p->running_var, whole.running_var, "running variance (unbiased)");
  }
}

}  // namespace
}  // namespace sd::distributed
