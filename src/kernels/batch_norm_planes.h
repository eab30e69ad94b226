#pragma once
// The passes over x of kernels/batch_norm.cpp's function for a contiguous NCHW fp32 tensor, with
// AVX2 and FMA: where TinyViT trains NCHW (CPUs without AVX-512). Channel c of sample n is the
// plane of `pixels` values at x + (n · channels + c) · pixels. Each channel by itself, in
// parallel over the channels, its planes in segments that stay in the core's cache for their
// two passes: the results do not depend on the threads.
#include <cstdint>
#include <utility>
#include <vector>

namespace sd::kernels {

struct Planes {
  int64_t batch, channels, pixels;
  int64_t count() const { return batch * pixels; }  // values per channel
};

// Per-channel values of backward's first pass: dy is the normalised tensor's gradient, the
// output's itself or, with `gelu`, times GELU'(x · alpha + beta).
struct GradientSums {
  const float *mean, *alpha, *beta;
  bool gelu;
};

// Per-channel values of backward's second pass.
struct InputGradient {
  const float *mean, *dy_mean, *k, *invstd, *weight;
};

// Per channel, the mean (float, into `mean`) and the sum of squared deviations from it (double):
// each segment's sum in double and its squared deviations about its own mean, joined as Chan,
// Golub and LeVeque's parallel variance.
std::vector<double> plane_moments(const float* x, const Planes& p, float* mean);

// out = x · alpha + beta per channel, then GELU when `gelu`.
void normalise_planes(const float* x, float* out, const Planes& p, const float* alpha,
                      const float* beta, bool gelu);

// Per channel, Σ dy and Σ (x - mean) · dy: each sample's in float, the samples' in double, as
// ATen's kernel sums them. With `gelu`, dy is written to `dy` for the second pass.
std::pair<std::vector<double>, std::vector<double>> plane_gradient_sums(const float* x,
                                                                        const float* grad,
                                                                        float* dy, const Planes& p,
                                                                        const GradientSums& v);

// dx = (dy - dy_mean - (x - mean) · k) · invstd · weight per channel (dx may be dy).
void plane_input_gradient(const float* x, const float* dy, float* dx, const Planes& p,
                          const InputGradient& v);

}  // namespace sd::kernels
