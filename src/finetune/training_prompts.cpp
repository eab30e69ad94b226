#include "finetune/training_prompts.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <map>

#include "data/rle.h"

namespace sd::finetune {

namespace {

// The next prompt of a kind made from a mask: from the next annotations of `order` until one
// gives it (`next` advanced past those used); nullopt when they run out.
std::optional<TrainingPrompt> next_annotation_prompt(
    const std::vector<const data::Annotation*>& candidates, const at::Tensor& order, int64_t& next,
    const data::PromptSpec& spec, uint64_t seed) {
  while (next < order.numel()) {
    const data::Annotation& a = *candidates[order[next++].item<int64_t>()];
    at::Tensor mask = data::rle_decode(a.segmentation);
    std::optional<models::Prompts> prompt = data::make_prompt(a, mask, spec, seed);
    if (prompt) return TrainingPrompt{spec, *prompt, mask};
  }
  return std::nullopt;
}

// An image kind's points in the order they are used: the grid's shuffled (all N x N would be
// more than a step uses), random's as drawn.
std::vector<models::Prompts> image_prompts_in_order(const data::PromptSpec& spec,
                                                    const data::Record& record, uint64_t seed,
                                                    at::Generator& generator) {
  std::vector<models::Prompts> points = data::image_prompts(
      spec, {record.image.height, record.image.width}, seed, record.image.file_name);
  if (spec.kind != data::PromptKind::grid) return points;
  const at::Tensor order = at::randperm(int64_t(points.size()), generator, at::kLong);
  std::vector<models::Prompts> shuffled;
  for (int64_t i = 0; i < order.numel(); ++i) shuffled.push_back(points[order[i].item<int64_t>()]);
  return shuffled;
}

}  // namespace

std::vector<TrainingPrompt> sample_prompts(const data::Record& record,
                                           const std::vector<data::PromptSpec>& kinds,
                                           int64_t count, uint64_t seed) {
  std::vector<const data::Annotation*> candidates;
  for (const data::Annotation& a : record.annotations)
    if (data::rle_area(a.segmentation) > 0) candidates.push_back(&a);
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor order = at::randperm(int64_t(candidates.size()), generator, at::kLong);
  int64_t next_annotation = 0;
  std::map<size_t, std::vector<models::Prompts>> points;  // kind index -> its points, reversed
  std::vector<TrainingPrompt> out;
  while (int64_t(out.size()) < count) {
    const size_t k = out.size() % kinds.size();
    const data::PromptSpec& spec = kinds[k];
    if (spec.needs_mask()) {
      std::optional<TrainingPrompt> p =
          next_annotation_prompt(candidates, order, next_annotation, spec, seed);
      if (!p) break;
      out.push_back(std::move(*p));
      continue;
    }
    if (!points.count(k)) {
      points[k] = image_prompts_in_order(spec, record, seed, generator);
      std::reverse(points[k].begin(), points[k].end());
    }
    if (points[k].empty()) break;
    out.push_back({spec, std::move(points[k].back()), at::Tensor()});
    points[k].pop_back();
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
