#include "models/bf16_products.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>
#include <c10/util/Logging.h>
#include <torch/library.h>
#include <torch/version.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "models/autocast.h"
#include "util/log.h"

namespace sd::models {
namespace {

// The products CPU autocast runs in the lower precision (checked on LibTorch 1.13: its
// conv_transpose* stay fp32 there, so they are not among them), where this LibTorch has them.
constexpr const char* kProducts[] = {
    "mm",     "bmm",    "matmul", "linear",         "addmm",          "baddbmm",       "addbmm",
    "conv1d", "conv2d", "conv3d", "conv1d.padding", "conv2d.padding", "conv3d.padding"};

// Whether LibTorch's own bf16 products go through oneDNN, which accumulates in fp32. It takes
// them there on x86 CPUs with AVX-512 BW, VL and DQ; elsewhere LibTorch 1.13's generic
// products sum in bf16 (relative error 6% at 3,072 terms) and run scalar code.
bool onednn_multiplies_bf16() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has = __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return has;
#else
  return false;
#endif
}

// Autocast's cast of an operand: floating-point CPU tensors other than double to bf16, and on
// to fp32 when the product is to run there.
at::Tensor operand(const at::Tensor& t, bool in_fp32) {
  if (!t.defined() || !t.device().is_cpu() || !t.is_floating_point() ||
      t.scalar_type() == at::kDouble)
    return t;
  const at::Tensor bf16 = t.to(at::kBFloat16);
  return in_fp32 ? bf16.to(at::kFloat) : bf16;
}

// Stands in for autocast's kernel of each product: the operands rounded to bf16 as autocast
// rounds them, the product in fp32 and its result rounded to bf16 once, which is what a CPU with
// bf16 arithmetic computes; or, where bf16_products_in_fp32() is false (it depends on the
// environment), autocast's own behaviour: the product in bf16.
void bf16_product(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const bool in_fp32 = bf16_products_in_fp32();
  const size_t arguments = op.schema().arguments().size();
  for (auto it = stack->end() - static_cast<std::ptrdiff_t>(arguments); it != stack->end(); ++it)
    if (it->isTensor()) *it = operand(it->toTensor(), in_fp32);
  {
    Fp32Scope no_autocast;
    op.callBoxed(stack);
  }
  if (!in_fp32) return;
  const size_t results = op.schema().returns().size();
  for (auto it = stack->end() - static_cast<std::ptrdiff_t>(results); it != stack->end(); ++it)
    if (it->isTensor() && it->toTensor().scalar_type() == at::kFloat)
      *it = it->toTensor().to(at::kBFloat16);
}

// LibTorch says that a kernel was replaced, once per product (glog in 1.13, a warning in 2.x):
// here that is the point, so both are held back while we register.
class QuietReplacement {
 public:
  QuietReplacement() { log_level_ = 2; }  // errors only
  ~QuietReplacement() { log_level_ = level_; }

 private:
  struct Ignore : c10::WarningHandler {
#if TORCH_VERSION_MAJOR >= 2
    void process(const c10::Warning&) override {}
#else
    void process(const c10::SourceLocation&, const std::string&, const bool) override {}
#endif
  };
#if TORCH_VERSION_MAJOR >= 2
  using HandlerGuard = c10::WarningUtils::WarningHandlerGuard;
#else
  using HandlerGuard = c10::Warning::WarningHandlerGuard;
#endif
#ifdef C10_USE_GLOG
  int& log_level_ = FLAGS_minloglevel;
#else
  int& log_level_ = FLAGS_caffe2_log_level;
#endif
  const int level_ = log_level_;
  Ignore ignore_;
  HandlerGuard guard_{&ignore_};
};

void replace_autocast_products() {
  static auto* library = new torch::Library(torch::Library::IMPL, "aten",
                                            c10::DispatchKey::AutocastCPU, __FILE__, __LINE__);
  QuietReplacement quiet;
  for (const char* name : kProducts) {
    const char* dot = std::strchr(name, '.');
    const std::string op_name = dot ? std::string(name, dot) : std::string(name);
    const auto op = c10::Dispatcher::singleton().findSchema(
        {"aten::" + op_name, dot ? std::string(dot + 1) : std::string()});
    if (op && op->hasKernelForDispatchKey(c10::DispatchKey::AutocastCPU))
      library->impl(name, torch::CppFunction::makeFromBoxedFunction<&bf16_product>());
  }
}

}  // namespace

bool bf16_products_in_fp32() {
  const char* forced = std::getenv("SAMDISTILL_BF16_PRODUCTS");
  if (forced && std::strcmp(forced, "fp32") == 0) return true;
  return !onednn_multiplies_bf16();
}

void prepare_bf16_products() {
  if (!bf16_products_in_fp32()) return;
  static std::once_flag once;
  std::call_once(once, [] {
    replace_autocast_products();
    log::info(
        "bf16: this CPU has no oneDNN bf16 products (AVX-512 BW/VL/DQ): autocast's products "
        "multiply their bf16-rounded operands in fp32 and round the result to bf16");
  });
}

}  // namespace sd::models
