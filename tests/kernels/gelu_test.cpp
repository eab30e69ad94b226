// gelu_over: ATen's exact GELU written over a fresh output where nothing records it.
#include "kernels/gelu.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

namespace sd::kernels {
namespace {

TEST(GeluOver, WritesOverDenseValuesWithAtensNumbers) {
  at::NoGradGuard no_grad;
  at::manual_seed(3);
  const at::Tensor rows = at::randn({300, 40}) * 4;
  const at::Tensor channels_last =
      (at::randn({2, 24, 9, 7}) * 4).contiguous(at::MemoryFormat::ChannelsLast);
  for (const at::Tensor& x : {rows, channels_last}) {
    const at::Tensor expected = at::gelu(x.contiguous());
    const at::Tensor fresh = x.clone(at::MemoryFormat::Preserve);
    const void* storage = fresh.data_ptr();
    const at::Tensor y = gelu_over(fresh);
    EXPECT_EQ(y.data_ptr(), storage);  // no new output
    EXPECT_EQ(y.strides(), x.strides());
    EXPECT_TRUE(at::equal(y.contiguous(), expected));
  }
  // A strided view is not written over.
  const at::Tensor strided = rows.t();
  const at::Tensor y = gelu_over(strided);
  EXPECT_NE(y.data_ptr(), strided.data_ptr());
  EXPECT_TRUE(at::equal(y, at::gelu(strided)));
}

TEST(GeluOver, LeavesWhatAutogradRecordsIntact) {
  const at::Tensor x = at::randn({8, 16}).requires_grad_();
  const at::Tensor before = x.detach().clone();
  const at::Tensor y = gelu_over(x * 1.0);
  EXPECT_TRUE(at::equal(x.detach(), before));
  y.sum().backward();
  EXPECT_TRUE(at::allclose(x.grad(), at::gelu_backward(at::ones_like(before), before)));
}

}  // namespace
}  // namespace sd::kernels
