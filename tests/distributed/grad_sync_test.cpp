// Gradient averaging over two ranks on a real Gloo group on loopback (the two ranks are two
// threads of this process): broadcast from rank 0, bucket order and sizes, accumulation.
#include "distributed/grad_sync.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>

#include <future>
#include <mutex>
#include <thread>

#include "distributed/group.h"
#include "distributed/loopback_world.h"

namespace sd::distributed {
namespace {

// Three layers; the last one's bias gets no gradient when `skip_bias` (unused parameter).
// Which rank skips it in which step:
enum class Skip { never, everywhere, on_rank_1, in_the_first_step };
bool skips(Skip mode, int rank, int step) {
  return mode == Skip::everywhere || (mode == Skip::on_rank_1 && rank == 1) ||
         (mode == Skip::in_the_first_step && step == 0);
}
int steps_of(Skip mode) { return mode == Skip::in_the_first_step ? 2 : 1; }
struct Net : torch::nn::Module {
  Net() {
    a = register_module("a", torch::nn::Linear(6, 300));
    b = register_module("b", torch::nn::Linear(300, 5));
    c = register_module("c", torch::nn::Linear(5, 1));
    register_buffer("count", at::zeros({2}));
  }
  at::Tensor forward(const at::Tensor& x, bool skip_bias) {
    const at::Tensor h = b(a(x)).relu();
    return skip_bias ? at::linear(h, c->weight) : c(h);
  }
  torch::nn::Linear a{nullptr}, b{nullptr}, c{nullptr};
};

// The two ranks are threads: their numbers come from their own generators.
at::Tensor input(int rank, int micro) {
  return at::randn({3, 6}, at::detail::createCPUGenerator(uint64_t(100 + 10 * rank + micro)));
}

// Net's initial weights come from the global generator: one rank at a time.
std::unique_ptr<Net> seeded_net(int seed) {
  static std::mutex one_at_a_time;
  std::lock_guard<std::mutex> lock(one_at_a_time);
  at::manual_seed(seed);
  return std::make_unique<Net>();
}

struct RankResult {
  std::vector<at::Tensor> grads, params;
  std::vector<size_t> bucket_sizes;
  size_t launched_in_backward = 0;
  GradientSync::Timing timing;
};

// One rank's step: rank 1 starts from other weights, which the broadcast replaces.
RankResult run_rank(int rank, int port, int micro_batches, Skip skip, int64_t bucket_bytes,
                    bool overlap) {
  std::unique_ptr<Group> group =
      connect(loopback_world(rank, port), GroupOptions{std::chrono::seconds(20), false});
  std::unique_ptr<Net> owned = seeded_net(rank);
  Net& net = *owned;
  net.buffers()[0].fill_(rank + 1);
  broadcast_module(*group, net);
  GradientSync sync(*group, net.parameters(), bucket_bytes, bucket_bytes);
  sync.set_overlap(overlap);
  for (int step = 0; step < steps_of(skip); ++step) {
    for (at::Tensor& p : net.parameters()) p.mutable_grad() = at::Tensor();
    for (int m = 0; m < micro_batches; ++m) {
      if (m == micro_batches - 1) sync.arm();
      net.forward(input(rank, m), skips(skip, rank, step)).pow(2).mean().backward();
    }
    sync.finish();
  }
  RankResult r;
  for (const at::Tensor& p : net.parameters()) {
    r.grads.push_back(p.grad().defined() ? p.grad().clone() : at::Tensor());
    r.params.push_back(p.detach().clone());
  }
  r.params.push_back(net.buffers()[0].clone());
  r.bucket_sizes = sync.bucket_sizes();
  r.launched_in_backward = sync.launched_in_backward();
  r.timing = sync.last_timing();
  return r;
}

std::vector<RankResult> run_two(int micro_batches, Skip skip, int64_t bucket_bytes,
                                bool overlap = true) {
  const int port = free_port();
  auto other =
      std::async(std::launch::async, run_rank, 1, port, micro_batches, skip, bucket_bytes, overlap);
  RankResult zero = run_rank(0, port, micro_batches, skip, bucket_bytes, overlap);
  return {zero, other.get()};
}

// What one process computes for the last step: rank 0's weights, the mean of both ranks'
// gradients; undefined where neither rank had one.
std::vector<at::Tensor> expected_grads(int micro_batches, Skip skip) {
  std::unique_ptr<Net> owned = seeded_net(0);
  Net& net = *owned;
  const int step = steps_of(skip) - 1;
  for (int rank = 0; rank < 2; ++rank)
    for (int m = 0; m < micro_batches; ++m)
      (net.forward(input(rank, m), skips(skip, rank, step)).pow(2).mean() / 2).backward();
  std::vector<at::Tensor> out;
  for (const at::Tensor& p : net.parameters()) out.push_back(p.grad());
  return out;
}

void expect_mean_gradients(const std::vector<RankResult>& ranks, int micro_batches, Skip skip) {
  const std::vector<at::Tensor> want = expected_grads(micro_batches, skip);
  for (const RankResult& r : ranks) {
    ASSERT_EQ(r.grads.size(), want.size());
    for (size_t k = 0; k < want.size(); ++k) {
      ASSERT_EQ(r.grads[k].defined(), want[k].defined()) << "parameter " << k;
      if (want[k].defined()) {
        EXPECT_TRUE(at::allclose(r.grads[k], want[k], 1e-5, 1e-6)) << "parameter " << k;
      }
    }
  }
  for (size_t k = 0; k < ranks[0].params.size(); ++k)
    EXPECT_TRUE(at::equal(ranks[0].params[k], ranks[1].params[k])) << "rank 0's weights, buffers";
}

TEST(GradientSync, AveragesOverTheRanksFromRankZerosWeights) {
  if (!supported()) GTEST_SKIP() << "this build has no distributed support";
  const auto ranks = run_two(1, Skip::never, kBucketBytes);
  expect_mean_gradients(ranks, 1, Skip::never);
  EXPECT_EQ(ranks[0].bucket_sizes, (std::vector<size_t>{6})) << "25 MiB: one bucket";
  EXPECT_EQ(ranks[0].params.back()[0].item<float>(), 1.0f) << "rank 0's buffer";
}

// Buckets of ~1 KiB: the layers' tensors in reverse order, a bucket closing once it reaches
// the size; all but the last go out during backward.
TEST(GradientSync, SmallBucketsGoOutDuringBackwardInReverseOrder) {
  if (!supported()) GTEST_SKIP() << "this build has no distributed support";
  const auto ranks = run_two(1, Skip::never, 1024);
  expect_mean_gradients(ranks, 1, Skip::never);
  // c.bias (1) + c.weight (5) + b.bias (5) = 44 bytes, then b.weight (1500 x 4 bytes) closes
  // that bucket; a.bias (1200 bytes) alone; a.weight.
  EXPECT_EQ(ranks[0].bucket_sizes, (std::vector<size_t>{4, 1, 1}));
  EXPECT_GE(ranks[0].launched_in_backward, 2u);
}

// Without overlap every bucket goes out after backward: the same mean, nothing hidden.
TEST(GradientSync, WithoutOverlapNothingIsHidden) {
  if (!supported()) GTEST_SKIP() << "this build has no distributed support";
  const auto ranks = run_two(1, Skip::never, 1024, false);
  expect_mean_gradients(ranks, 1, Skip::never);
  EXPECT_EQ(ranks[0].launched_in_backward, 0u);
  EXPECT_GT(ranks[0].timing.allreduce_s, 0.0);
  EXPECT_EQ(ranks[0].timing.hidden_s, 0.0);
  const auto overlapped = run_two(1, Skip::never, 1024, true);
  EXPECT_GT(overlapped[0].timing.allreduce_s, 0.0);
  EXPECT_LE(overlapped[0].timing.hidden_s, overlapped[0].timing.allreduce_s);
  EXPECT_GT(overlapped[0].timing.hidden_s, 0.0) << "the first buckets went out during backward";
}

TEST(GradientSync, AccumulatedMicroBatchesAreAveragedOnce) {
  if (!supported()) GTEST_SKIP() << "this build has no distributed support";
  expect_mean_gradients(run_two(3, Skip::never, 1024), 3, Skip::never);
}

// As with one process, a parameter no rank used has no gradient (AdamW leaves it alone); one
// that a rank did not use counts as zero there.
TEST(GradientSync, UnusedParametersAreLeftAloneAndCountAsZeroWhereUnused) {
  if (!supported()) GTEST_SKIP() << "this build has no distributed support";
  expect_mean_gradients(run_two(1, Skip::everywhere, 1024), 1, Skip::everywhere);
  expect_mean_gradients(run_two(1, Skip::on_rank_1, 1024), 1, Skip::on_rank_1);
}

// A parameter unused in one step holds no bucket back in the next; when it is used again its
// gradient still arrives (in an extra all-reduce).
TEST(GradientSync, AParameterUsedAgainIsAveragedToo) {
  if (!supported()) GTEST_SKIP() << "this build has no distributed support";
  expect_mean_gradients(run_two(2, Skip::in_the_first_step, 1024), 2, Skip::in_the_first_step);
}

}  // namespace
}  // namespace sd::distributed
