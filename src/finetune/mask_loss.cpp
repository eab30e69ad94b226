#include "finetune/mask_loss.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

namespace sd::finetune {

at::Tensor focal_loss(const at::Tensor& logits, const at::Tensor& targets) {
  const double alpha = 0.25, gamma = 2.0;
  at::Tensor p = logits.sigmoid();
  at::Tensor ce =
      at::binary_cross_entropy_with_logits(logits, targets, {}, {}, at::Reduction::None);
  at::Tensor p_t = p * targets + (1 - p) * (1 - targets);
  at::Tensor alpha_t = alpha * targets + (1 - alpha) * (1 - targets);
  return (alpha_t * ce * (1 - p_t).pow(gamma)).flatten(2).mean(-1);
}

at::Tensor dice_loss(const at::Tensor& logits, const at::Tensor& targets) {
  at::Tensor p = logits.sigmoid().flatten(2);
  at::Tensor t = targets.flatten(2);
  return 1 - (2 * (p * t).sum(-1) + 1) / (p.sum(-1) + t.sum(-1) + 1);
}

at::Tensor bce_loss(const at::Tensor& logits, const at::Tensor& targets) {
  return at::binary_cross_entropy_with_logits(logits, targets, {}, {}, at::Reduction::None)
      .flatten(2)
      .mean(-1);
}

at::Tensor mask_ious(const at::Tensor& logits, const at::Tensor& targets) {
  at::NoGradGuard no_grad;
  at::Tensor m = (logits > 0).flatten(2);
  at::Tensor t = (targets > 0.5).flatten(2);
  at::Tensor inter = (m & t).sum(-1).to(at::kFloat);
  at::Tensor uni = (m | t).sum(-1).to(at::kFloat);
  return at::where(uni > 0, inter / uni.clamp_min(1), at::ones_like(uni));  // both empty: 1
}

PromptLoss prompt_loss(const at::Tensor& logits, const at::Tensor& iou_predictions,
                       const at::Tensor& target, MaskLoss kind) {
  at::Tensor targets = target.expand_as(logits);
  at::Tensor per_mask = kind == MaskLoss::bce_dice
                            ? bce_loss(logits, targets) + dice_loss(logits, targets)
                            : 20 * focal_loss(logits, targets) + dice_loss(logits, targets);
  const int64_t kept = per_mask[0].argmin().item<int64_t>();
  at::Tensor loss = per_mask[0][kept];
  if (kind == MaskLoss::focal_dice_iou)
    loss = loss + at::mse_loss(iou_predictions, mask_ious(logits, targets));
  return {loss, kept};
}

}  // namespace sd::finetune
