#include "models/recompute.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include "models/autocast.h"

namespace sd::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct Body : torch::CustomClassHolder {
  torch::nn::Module* module = nullptr;
  std::function<at::Tensor(const at::Tensor&)> fn;
  Amp amp = Amp::off;
};

// The module's buffers now, copied back by restore().
class BufferSnapshot {
 public:
  explicit BufferSnapshot(torch::nn::Module& module) : buffers_(module.buffers()) {
    for (const at::Tensor& b : buffers_) copies_.push_back(b.clone());
  }
  void restore() {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < buffers_.size(); ++i) buffers_[i].copy_(copies_[i]);
  }

 private:
  std::vector<at::Tensor> buffers_, copies_;
};

struct Recompute : torch::autograd::Function<Recompute> {
  // Inputs: x, the body (not a tensor), then the module's parameters, so that autograd sends
  // their gradients through this node. Runs under no-grad (LibTorch's Function::apply).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x,
                            const c10::intrusive_ptr<Body>& body, at::TensorList params) {
    ctx->saved_data["body"] = c10::IValue::make_capsule(body);
    std::vector<at::Tensor> saved{x};
    saved.insert(saved.end(), params.begin(), params.end());
    ctx->save_for_backward(saved);
    return body->fn(x);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto body = c10::static_intrusive_pointer_cast<Body>(ctx->saved_data["body"].toCapsule());
    variable_list saved = ctx->get_saved_variables();
    const at::Tensor x = saved[0].detach().requires_grad_(saved[0].requires_grad());
    variable_list wrt;  // what needs a gradient, in the order of `saved`
    std::vector<size_t> where;
    if (x.requires_grad()) {
      wrt.push_back(x);
      where.push_back(0);
    }
    for (size_t i = 1; i < saved.size(); ++i)
      if (saved[i].requires_grad()) {
        wrt.push_back(saved[i]);
        where.push_back(i);
      }
    // The statistics go back once the gradients are taken: BatchNorm's backward checks that
    // the running statistics it saw are unchanged.
    BufferSnapshot buffers(*body->module);
    at::Tensor y;
    {
      at::AutoGradMode grad(true);
      AutocastScope autocast(body->amp, x.device());
      y = body->fn(x);
    }
    variable_list grads = torch::autograd::grad({y}, wrt, {grad_out[0]}, /*retain_graph=*/false,
                                                /*create_graph=*/false, /*allow_unused=*/true);
    buffers.restore();
    // One slot per input of forward: x, the body (none), each parameter.
    variable_list out(saved.size() + 1);
    for (size_t k = 0; k < where.size(); ++k) out[where[k] == 0 ? 0 : where[k] + 1] = grads[k];
    return out;
  }
};

}  // namespace

at::Tensor recompute_in_backward(torch::nn::Module& module,
                                 std::function<at::Tensor(const at::Tensor&)> fn,
                                 const at::Tensor& x) {
  auto body = c10::make_intrusive<Body>();
  body->module = &module;
  body->fn = std::move(fn);
  body->amp = current_amp(x.device().type());
  const std::vector<at::Tensor> params = module.parameters();
  return Recompute::apply(x, body, at::TensorList(params));
}

}  // namespace sd::models
