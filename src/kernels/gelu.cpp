#include "kernels/gelu.h"

#include <ATen/ATen.h>

#include "kernels/autograd.h"

namespace sd::kernels {

namespace {
bool channels_last_only(const at::Tensor& x) {
  return x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}
}  // namespace

at::Tensor gelu(const at::Tensor& x) {
  if (channels_last_only(x)) return at::gelu(x.permute({0, 2, 3, 1})).permute({0, 3, 1, 2});
  return at::gelu(x);
}

at::Tensor gelu_over(at::Tensor x) {
  if (autograd_records(x)) return kernels::gelu(x);
  if (channels_last_only(x)) {
    at::Tensor values = x.permute({0, 2, 3, 1});  // contiguous
    at::gelu_(values);
    return x;
  }
  if (!x.is_contiguous()) return kernels::gelu(x);
  return at::gelu_(x);
}

}  // namespace sd::kernels
