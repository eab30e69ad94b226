#pragma once
// Inference Linears on oneDNN's matrix product, the library LibTorch's own CPU products run on:
// with the bias, the activation and a residual sum in the product's epilogue (one pass over the
// output instead of three), and bf16 weights converted and laid out for the product once, not
// at every call as LibTorch's autocast does.
#include <ATen/core/Tensor.h>

#include <memory>

namespace sd::kernels {

enum class Epilogue { none, gelu, relu };

class OnednnLinear {
 public:
  OnednnLinear();
  // Whether this build has oneDNN's headers (else every call is undefined).
  static bool built();

  // act(x weightᵀ + bias) in `type` (fp32, or bf16 as autocast's) for x [..., K] of any
  // floating type and fp32 weight [N, K], bias [N] (or undefined); with `residual` defined
  // (fp32, x's rows by N, contiguous) residual + that, in fp32. Undefined
  // where oneDNN does not run it: a build without oneDNN, autograd, a device other than the
  // CPU, an ISA without the type's products; the caller then takes LibTorch's path. The
  // weights may change between calls (their version is checked).
  at::Tensor operator()(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                        at::ScalarType type, Epilogue act, const at::Tensor& residual = {});

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace sd::kernels
