#include "kernels/gelu.h"

#include <ATen/ATen.h>

namespace sd::kernels {

at::Tensor gelu(const at::Tensor& x) {
  if (x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast))
    return at::gelu(x.permute({0, 2, 3, 1})).permute({0, 3, 1, 2});
  return at::gelu(x);
}

}  // namespace sd::kernels
