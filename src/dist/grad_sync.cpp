#include "dist/grad_sync.h"

#include <ATen/ATen.h>

#include <chrono>

namespace sd::dist {

void broadcast_module(Group& group, torch::nn::Module& model) {
  std::vector<at::Tensor> tensors;
  at::NoGradGuard no_grad;
  for (const at::Tensor& p : model.parameters()) tensors.push_back(p.data());
  for (const at::Tensor& b : model.buffers()) tensors.push_back(b);
  group.broadcast(tensors);
}

GradientSync::GradientSync(Group& group, std::vector<at::Tensor> params, int64_t first_bucket_bytes,
                           int64_t bucket_bytes)
    : group_(group), params_(std::move(params)), slots_(params_.size()) {
  int64_t limit = first_bucket_bytes, bytes = 0;
  std::vector<int64_t> elements;
  for (size_t k = params_.size(); k-- > 0;) {
    const at::Tensor& p = params_[k];
    const bool fits = !buckets_.empty() && bytes < limit &&
                      params_[buckets_.back().params.front()].options().type_equal(p.options());
    if (!fits) {
      if (!buckets_.empty()) limit = bucket_bytes;
      buckets_.emplace_back();
      elements.push_back(0);
      bytes = 0;
    }
    slots_[k] = Slot{buckets_.size() - 1, elements.back(), false};
    buckets_.back().params.push_back(k);
    elements.back() += p.numel();
    bytes += p.numel() * static_cast<int64_t>(p.element_size());
  }
  for (size_t b = 0; b < buckets_.size(); ++b)
    buckets_[b].flat = at::zeros({elements[b]}, params_[buckets_[b].params.front()].options());
  for (size_t k = 0; k < params_.size(); ++k)
    hooks_.push_back(
        params_[k].register_hook([this, k](const at::Tensor& grad) { on_gradient(k, grad); }));
  reset();
}

GradientSync::~GradientSync() {
  for (size_t k = 0; k < params_.size(); ++k) params_[k].remove_hook(hooks_[k]);
}

std::vector<size_t> GradientSync::bucket_sizes() const {
  std::vector<size_t> out;
  for (const Bucket& b : buckets_) out.push_back(b.params.size());
  return out;
}

void GradientSync::arm() { armed_ = true; }

at::Tensor GradientSync::view_of(size_t param) {
  const Slot& s = slots_[param];
  return buckets_[s.bucket]
      .flat.narrow(0, s.offset, params_[param].numel())
      .view(params_[param].sizes());
}

// Called with the gradient of this backward pass before autograd adds it to .grad: the
// bucket gets their sum, the parameter's whole gradient for the step.
void GradientSync::on_gradient(size_t param, const at::Tensor& grad) {
  if (!armed_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  at::NoGradGuard no_grad;
  at::Tensor view = view_of(param);
  const at::Tensor& held = params_[param].grad();
  if (held.defined())
    at::add_out(view, held, grad);
  else
    view.copy_(grad);
  Slot& s = slots_[param];
  if (s.ready) return;
  s.ready = true;
  buckets_[s.bucket].pending -= 1;
  if (overlap_) launch_ready();
}

void GradientSync::launch_ready() {
  while (next_ < buckets_.size() && buckets_[next_].pending == 0) {
    buckets_[next_].launched = Pending::Clock::now();
    buckets_[next_].work = group_.all_reduce(buckets_[next_].flat);
    ++next_;
  }
}

void GradientSync::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  at::NoGradGuard no_grad;
  armed_ = false;
  launched_in_backward_ = next_;
  const Pending::Clock::time_point backward_end = Pending::Clock::now();
  for (size_t k = 0; k < params_.size(); ++k) {
    if (slots_[k].ready) continue;
    const at::Tensor& held = params_[k].grad();
    at::Tensor view = view_of(k);
    held.defined() ? view.copy_(held) : view.zero_();
    slots_[k].ready = true;
    buckets_[slots_[k].bucket].pending -= 1;
  }
  launch_ready();
  for (Bucket& b : buckets_) b.work.wait();
  measure(backward_end);
  const double ranks = group_.world().size;
  for (Bucket& b : buckets_) b.flat.div_(ranks);
  for (size_t k = 0; k < params_.size(); ++k) {
    at::Tensor& grad = params_[k].mutable_grad();
    if (grad.defined())
      grad.copy_(view_of(k));
    else
      grad = view_of(k).clone();
  }
  reset();
}

void GradientSync::measure(Pending::Clock::time_point backward_end) {
  using Seconds = std::chrono::duration<double>;
  timing_ = Timing{};
  Pending::Clock::time_point previous{};
  for (const Bucket& b : buckets_) {
    const Pending::Clock::time_point start = std::max(b.launched, previous), end = b.work.done_at();
    if (end <= start) continue;
    timing_.allreduce_s += Seconds(end - start).count();
    if (start < backward_end)
      timing_.hidden_s += Seconds(std::min(end, backward_end) - start).count();
    previous = end;
  }
}

void GradientSync::reset() {
  for (Slot& s : slots_) s.ready = false;
  for (Bucket& b : buckets_) b.pending = b.params.size();
  next_ = 0;
}

}  // namespace sd::dist
