#include "distributed/grad_sync.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>

namespace sd::distributed {

void broadcast_module(Group& group, torch::nn::Module& model) {
  std::vector<at::Tensor> tensors;
  at::NoGradGuard no_grad;
  for (const at::Tensor& p : model.parameters()) tensors.push_back(p.data());
  for (const at::Tensor& b : model.buffers()) tensors.push_back(b);
  group.broadcast(tensors);
}

GradientSync::GradientSync(Group& group, std::vector<at::Tensor> params, int64_t first_bucket_bytes,
                           int64_t bucket_bytes)
    : group_(group),
      params_(std::move(params)),
      slots_(params_.size()),
      used_(params_.size(), false),
      unused_(params_.size(), false) {
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

// Parameters no rank used in the last step (MobileSAM's TinyViT keeps an unused
// classification head) count as ready from the start, so that they hold no bucket back.
void GradientSync::arm() {
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = true;
  for (size_t k = 0; k < params_.size(); ++k) {
    if (!unused_[k]) continue;
    view_of(k).zero_();
    slots_[k].ready = true;
    buckets_[slots_[k].bucket].pending -= 1;
  }
  if (overlap_) launch_ready();
}

at::Tensor GradientSync::view_of(size_t param) {
  const Slot& s = slots_[param];
  return buckets_[s.bucket]
      .flat.narrow(0, s.offset, params_[param].numel())
      .view(params_[param].sizes());
}

// The parameter's whole gradient of the step: the one of this backward pass (autograd adds it
// to .grad after the hook) plus what earlier micro-batches left in .grad.
at::Tensor GradientSync::step_gradient(size_t param, const at::Tensor& grad) const {
  const at::Tensor& held = params_[param].grad();
  if (!grad.defined()) return held.defined() ? held : at::zeros_like(params_[param]);
  return held.defined() ? held + grad : grad;
}

void GradientSync::on_gradient(size_t param, const at::Tensor& grad) {
  if (!armed_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  at::NoGradGuard no_grad;
  used_[param] = true;
  if (unused_[param]) {  // its bucket may be on the wire: it goes in finish()'s extra round
    late_[param] = step_gradient(param, grad);
    return;
  }
  view_of(param).copy_(step_gradient(param, grad));
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
    if (unused_[k] && params_[k].grad().defined()) used_[k] = true;  // from earlier micro-batches
    if (slots_[k].ready) continue;
    // No gradient in the last micro-batch: what earlier ones left, else zero.
    if (params_[k].grad().defined()) used_[k] = true;
    view_of(k).copy_(step_gradient(k, at::Tensor()));
    slots_[k].ready = true;
    buckets_[slots_[k].bucket].pending -= 1;
  }
  launch_ready();
  for (Bucket& b : buckets_) b.work.wait();
  measure(backward_end);
  const std::vector<bool> used = used_anywhere();
  const double ranks = group_.world().size;
  for (Bucket& b : buckets_) b.flat.div_(ranks);
  for (size_t k = 0; k < params_.size(); ++k) {
    if (!used[k] || unused_[k]) continue;  // no rank's gradient: .grad stays undefined
    assign(k, view_of(k));
  }
  average_late(used, ranks);
  for (size_t k = 0; k < params_.size(); ++k) unused_[k] = !used[k];
  reset();
}

// Whether any rank had a gradient for each parameter this step (DDP's unused-parameter map).
std::vector<bool> GradientSync::used_anywhere() {
  at::Tensor mask = at::zeros({static_cast<int64_t>(params_.size())}, at::kInt);
  for (size_t k = 0; k < params_.size(); ++k) mask[static_cast<int64_t>(k)] = used_[k] ? 1 : 0;
  mask = mask.to(group_.device());
  group_.all_reduce(mask, Reduce::max).wait();
  mask = mask.cpu();
  std::vector<bool> out(params_.size());
  for (size_t k = 0; k < params_.size(); ++k)
    out[k] = mask[static_cast<int64_t>(k)].item<int>() != 0;
  return out;
}

// Parameters unused in the last step but used in this one (by some rank): one all-reduce of
// their gradients, the same on every rank since every rank knows both maps.
void GradientSync::average_late(const std::vector<bool>& used, double ranks) {
  std::vector<size_t> late;
  std::vector<at::Tensor> parts;
  for (size_t k = 0; k < params_.size(); ++k) {
    if (!unused_[k] || !used[k]) continue;
    late.push_back(k);
    auto mine = late_.find(k);
    parts.push_back(
        (mine != late_.end() ? mine->second : step_gradient(k, at::Tensor())).reshape({-1}));
  }
  late_.clear();
  if (late.empty()) return;
  at::Tensor flat = at::cat(parts).to(group_.device());
  group_.all_reduce(flat).wait();
  flat.div_(ranks);
  int64_t offset = 0;
  for (size_t k : late) {
    assign(k, flat.narrow(0, offset, params_[k].numel()).view(params_[k].sizes()));
    offset += params_[k].numel();
  }
}

void GradientSync::assign(size_t param, const at::Tensor& mean) {
  at::Tensor& grad = params_[param].mutable_grad();
  if (grad.defined())
    grad.copy_(mean);
  else
    grad = mean.clone();
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
  std::fill(used_.begin(), used_.end(), false);
  for (Bucket& b : buckets_) b.pending = b.params.size();
  next_ = 0;
}

}  // namespace sd::distributed
