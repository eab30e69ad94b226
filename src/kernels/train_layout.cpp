#include "kernels/train_layout.h"

#include "kernels/avx2.h"
#include "kernels/avx512_math.h"

namespace sd::kernels {

TrainLayout train_layout(const at::Tensor& x) {
  if (x.dim() != 4) return TrainLayout::none;
  if (x.is_contiguous(at::MemoryFormat::ChannelsLast) && avx512::cpu_has_avx512())
    return TrainLayout::rows;
  if (x.is_contiguous() && cpu_has_avx2_fma()) return TrainLayout::planes;
  return TrainLayout::none;
}

}  // namespace sd::kernels
