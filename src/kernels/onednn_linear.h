#pragma once
// Inference Linears on oneDNN's matrix product, the library LibTorch's own CPU products run on:
// with the bias, the activation and a residual sum in the product's epilogue (one pass over the
// output instead of three), and bf16 weights converted and laid out for the product once, not
// at every call as LibTorch's autocast does.
#include <ATen/core/Tensor.h>

#include <memory>

namespace sd::kernels {

enum class Epilogue { none, gelu, relu };

// How a product's input or output columns lie: whole rows ([..., cols]), or `in` / `out`
// column blocks ([chunks, rows, cols / chunks], each block contiguous): an MLP's wide hidden
// layer written by its first product in blocks and read by its second as a sum of block
// products, each of whose weights stays in a core's cache (hidden_chunks).
struct Chunks {
  int64_t in = 1, out = 1;
};

class OnednnLinear {
 public:
  OnednnLinear();
  // Whether this build has oneDNN's headers (else every call is undefined).
  static bool built();
  // The blocks an MLP's hidden layer of `hidden` columns is split into when its products run in
  // `type`: 1, or blocks of at most 1,024 columns in bf16 (oneDNN's bf16 product of K = 3,072
  // or 5,120 runs at about 0.7 of K = 1,024's speed on this project's machines).
  static int64_t hidden_chunks(int64_t hidden, at::ScalarType type);

  // act(x weightᵀ + bias) in `type` (fp32, or bf16 as autocast's) for x [..., K] of any
  // floating type and fp32 weight [N, K], bias [N] (or undefined); with `residual` defined
  // (fp32, x's rows by N, contiguous) residual + that, in fp32. Undefined
  // where oneDNN does not run it: a build without oneDNN, autograd, a device other than the
  // CPU, an ISA without the type's products; the caller then takes LibTorch's path. The
  // weights may change between calls (their version is checked). With `chunks.out` blocks the
  // output is [chunks.out, rows, N / chunks.out] (no residual); with `chunks.in` blocks x is
  // [chunks.in, rows, K / chunks.in] (contiguous), the epilogue none and the output fp32 (a
  // residual, or fp32 products), shaped as the residual where there is one, else [rows, N].
  // With `into_residual` the sum is written into `residual` itself, which is returned (the
  // caller hands over a residual it reads no more).
  at::Tensor operator()(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                        at::ScalarType type, Epilogue act, const at::Tensor& residual = {},
                        Chunks chunks = {}, bool into_residual = false);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace sd::kernels
