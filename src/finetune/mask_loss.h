#pragma once
#include <ATen/core/Tensor.h>

#include <string>

#include "util/words.h"

// The losses of SAM's mask decoder training, on low-res logits against 0/1 targets.
namespace sd::finetune {

// What prompt_loss adds up (see there).
enum class MaskLoss { focal_dice_iou, bce_dice };

// Sigmoid focal loss (alpha 0.25, gamma 2) of each mask, averaged over its pixels:
// logits, targets BxCxHxW -> BxC.
at::Tensor focal_loss(const at::Tensor& logits, const at::Tensor& targets);
// 1 - (2|P.T| + 1) / (|P| + |T| + 1) with P = sigmoid(logits): BxCxHxW -> BxC.
at::Tensor dice_loss(const at::Tensor& logits, const at::Tensor& targets);
// Binary cross-entropy of each mask averaged over its pixels: BxCxHxW -> BxC.
at::Tensor bce_loss(const at::Tensor& logits, const at::Tensor& targets);
// IoU of each thresholded mask (logits > 0) with its target, no gradient: BxCxHxW -> BxC.
at::Tensor mask_ious(const at::Tensor& logits, const at::Tensor& targets);

// SAM's training loss of one prompt. `logits` 1xCxHxW (C = 1, or 3 with multimask output),
// `iou_predictions` 1xC, `target` 1x1xHxW. focal_dice_iou: 20 x focal + dice of the mask with
// the lowest such loss (the only one that learns, as SAM trains ambiguous prompts) + the MSE
// of every predicted IoU against its mask's actual IoU; bce_dice: BCE + dice of the lowest.
// Returns the scalar loss and the index of the mask it kept.
struct PromptLoss {
  at::Tensor loss;
  int64_t kept = 0;
};
PromptLoss prompt_loss(const at::Tensor& logits, const at::Tensor& iou_predictions,
                       const at::Tensor& target, MaskLoss kind);

}  // namespace sd::finetune

namespace sd {
template <>
struct WordsOf<finetune::MaskLoss> {
  static constexpr std::pair<finetune::MaskLoss, const char*> list[] = {
      {finetune::MaskLoss::focal_dice_iou, "focal_dice_iou"},
      {finetune::MaskLoss::bce_dice, "bce_dice"}};
};
}  // namespace sd
