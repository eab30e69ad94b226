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
    variable_list inputs = ctx->get_saved_variables();  // x, then the parameters
    inputs[0] = inputs[0].detach().requires_grad_(inputs[0].requires_grad());
    const at::Tensor& x = inputs[0];
    // What needs a gradient, and its slot among forward's inputs (x, the body, parameters).
    variable_list wrt;
    std::vector<size_t> slot;
    for (size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i].requires_grad()) {
        wrt.push_back(inputs[i]);
        slot.push_back(i == 0 ? 0 : i + 1);
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
    variable_list out(inputs.size() + 1);  // none for the body
    for (size_t k = 0; k < slot.size(); ++k) out[slot[k]] = grads[k];
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
