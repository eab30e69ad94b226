#include "finetune/training_prompts.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "data/rle.h"

namespace sd::finetune {

std::vector<TrainingPrompt> sample_prompts(const data::Record& record,
                                           const std::vector<data::PromptSpec>& kinds,
                                           int64_t count, uint64_t seed) {
  std::vector<const data::Annotation*> candidates;
  for (const data::Annotation& a : record.annotations)
    if (data::rle_area(a.segmentation) > 0) candidates.push_back(&a);
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor order = at::randperm(int64_t(candidates.size()), generator, at::kLong);
  std::vector<TrainingPrompt> out;
  for (int64_t i = 0; i < order.numel() && int64_t(out.size()) < count; ++i) {
    const data::Annotation& a = *candidates[order[i].item<int64_t>()];
    const data::PromptSpec& spec = kinds[out.size() % kinds.size()];
    at::Tensor mask = data::rle_decode(a.segmentation);
    std::optional<models::Prompts> prompt = data::make_prompt(a, mask, spec, seed);
    if (prompt) out.push_back({spec, *prompt, mask});
  }
  return out;
}

std::optional<Click> error_click(const at::Tensor& predicted, const at::Tensor& target,
                                 int64_t valid_h, int64_t valid_w, double scale,
                                 at::Generator& generator) {
  at::Tensor p = predicted.slice(0, 0, valid_h).slice(1, 0, valid_w).cpu();
  at::Tensor t = target.slice(0, 0, valid_h).slice(1, 0, valid_w).cpu();
  const at::Tensor wrong = (p != t).flatten().nonzero().flatten();
  if (wrong.numel() == 0) return std::nullopt;
  const int64_t pick = at::randint(wrong.numel(), {1}, generator, at::kLong).item<int64_t>();
  const int64_t index = wrong[pick].item<int64_t>();
  const int64_t row = index / valid_w, col = index % valid_w;
  return Click{(double(col) + 0.5) * scale, (double(row) + 0.5) * scale,
               t.flatten()[index].item<bool>() ? 1 : 0};
}

}  // namespace sd::finetune
