#pragma once
// The passes of kernels/depthwise_conv.cpp's function over contiguous NCHW fp32 tensors, with AVX2
// and FMA: where TinyViT trains NCHW (CPUs without AVX-512). Plane (n, c), the H x W values of
// channel c of sample n, is filtered by channel c's 3 x 3 taps; each plane by itself, copied once
// into a zero-bordered buffer in the core's cache, in parallel over the planes.
#include <cstdint>

namespace sd::kernels {

struct PlaneGrid {
  int64_t batch, channels, height, width;
};

// out = x filtered by `weight` (C x 3 x 3; stride 1, zero padding 1).
void filter_planes(const float* x, const float* weight, float* out, const PlaneGrid& g);

// The gradients of filter_planes for the output's `grad`: dx = grad filtered by the taps turned
// half a turn; dweight[c][di][dj] = Σ grad · x shifted by (di - 1, dj - 1) over channel c's
// planes, each row's sums in float, the rows' and the samples' in double, in order.
void filter_planes_backward(const float* x, const float* weight, const float* grad, float* dx,
                            float* dweight, const PlaneGrid& g);

}  // namespace sd::kernels
