#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "data/prompts.h"
#include "data/records.h"
#include "eval/report.h"
#include "models/autocast.h"
#include "models/predictor.h"
#include "models/sam.h"
#include "segment/amg_config.h"

namespace sd::eval {

// Which of SAM's masks a prompt keeps. per_kind ("auto"): score for a single point, off
// otherwise.
enum class Multimask { per_kind, score, oracle, off };
// score: the mask of highest predicted IoU (SAM's practice for one point); oracle: the one
// closest to the reference; off: single-mask output.
Multimask multimask_for(Multimask setting, const data::PromptSpec& spec);

// The prompt kinds evaluated unless told otherwise.
extern const char* const kDefaultPrompts;

struct EvalSettings {
  std::vector<data::PromptSpec> prompts = data::parse_prompt_specs(kDefaultPrompts);
  Multimask multimask = Multimask::per_kind;
  int max_prompts_per_image = 64;      // the first annotations (file order) with a non-empty mask
  uint64_t seed = 0;                   // fgbg placement and random@K's points
  models::Amp amp = models::Amp::off;  // the student's forward passes (the teacher's stay fp32)
  segment::AmgConfig amg;              // everything: the generator's parameters (crop layers 0)
};

// Both models' masks for one prompt (HxW bool at the original size), kept for pictures.
struct PromptMasks {
  models::Prompts prompt;
  at::Tensor teacher, student;
  at::Tensor truth;  // the annotation's mask; undefined for prompts without one (grid@N)
};

// Teacher and student see identical prompts. By default they share one prompt encoder and
// mask decoder (the teacher's), so only the image embedding differs; a fine-tuned student
// brings its own.
class Evaluator {
 public:
  // `student`: the student's image encoder with the prompt encoder and mask decoder that make
  // its masks. `teacher_heads`: the prompt encoder and mask decoder applied to the teacher's
  // embeddings (its image encoder never runs); null: the student's.
  Evaluator(models::Sam student, EvalSettings settings, models::Sam teacher_heads = nullptr);

  // One image: `resized` uint8 HxWx3 (longest side 1024), `teacher_embedding` 1x256x64x64.
  // Appends an outcome per prompt to `report` (and the masks to `masks` when given).
  void evaluate_image(const std::string& image_id, const data::Record& record,
                      const at::Tensor& resized, const at::Tensor& teacher_embedding,
                      EvalReport& report, std::vector<PromptMasks>* masks = nullptr);

  const EvalSettings& settings() const { return settings_; }
  // The report's kinds and per-kind multimask modes, before any image.
  EvalReport empty_report() const;

 private:
  // The prompts of a kind made from the image alone (grid, random); `annotation` in the
  // outcomes is the prompt's index.
  void evaluate_image_prompts(const std::string& image_id, models::Size2 original,
                              const data::PromptSpec& spec, EvalReport& report,
                              std::vector<PromptMasks>* masks);
  // everything[@N]: both models' automatic masks (SAM's generator on their embeddings); an
  // outcome per teacher mask, scored by the best-matching student mask.
  void evaluate_everything(const std::string& image_id, models::Size2 original,
                           const data::PromptSpec& spec, EvalReport& report,
                           std::vector<PromptMasks>* masks);
  // The student's prediction, in the precision settings_.amp asks for.
  models::Prediction student_predict(const models::Prompts& prompt, bool multimask);

  models::SamPredictor student_, teacher_;
  EvalSettings settings_;
};

// The prompt as text in original pixels: "box x0,y0,x1,y1" or "points x,y,label; ...".
std::string describe(const models::Prompts& prompt);

}  // namespace sd::eval

namespace sd {
template <>
struct WordsOf<eval::Multimask> {
  static constexpr std::pair<eval::Multimask, const char*> list[] = {
      {eval::Multimask::per_kind, "auto"},
      {eval::Multimask::score, "score"},
      {eval::Multimask::oracle, "oracle"},
      {eval::Multimask::off, "off"}};
};
}  // namespace sd
