#include "eval/evaluator.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <limits>
#include <sstream>

#include "data/rle.h"
#include "eval/iou.h"
#include "segment/amg.h"
#include "util/clock.h"
#include "util/error.h"

namespace sd::eval {

const char* const kDefaultPrompts = "box,point,center,fgbg@100,fgbg@200,fgbg@300,fgbg@400,fgbg@500";

namespace {

// The mask a prompt keeps among the prediction's (1 or 3) masks; `reference` for oracle.
at::Tensor choose(const models::Prediction& p, Multimask mode, const at::Tensor& reference) {
  if (mode == Multimask::off) return p.masks[0];
  if (mode == Multimask::score) return p.masks[p.iou_predictions.argmax().item<int64_t>()];
  int64_t best = 0;
  double best_iou = -1;
  for (int64_t i = 0; i < p.masks.size(0); ++i) {
    double iou = mask_iou(p.masks[i], reference);
    if (iou > best_iou) best_iou = iou, best = i;
  }
  return p.masks[best];
}

}  // namespace

Multimask multimask_for(Multimask setting, const data::PromptSpec& spec) {
  if (setting != Multimask::per_kind) return setting;
  return spec.single_point() ? Multimask::score : Multimask::off;
}

std::string describe(const models::Prompts& p) {
  std::ostringstream s;
  s.precision(6);
  if (p.box.defined()) {
    at::Tensor b = p.box.reshape({4});
    s << "box " << b[0].item<float>() << "," << b[1].item<float>() << "," << b[2].item<float>()
      << "," << b[3].item<float>();
  }
  if (p.point_coords.defined()) {
    s << (p.box.defined() ? " " : "") << "points";
    for (int64_t i = 0; i < p.point_coords.size(0); ++i)
      s << (i ? "; " : " ") << p.point_coords[i][0].item<float>() << ","
        << p.point_coords[i][1].item<float>() << "," << p.point_labels[i].item<int>();
  }
  return s.str();
}

Evaluator::Evaluator(models::Sam student, EvalSettings settings, models::Sam teacher_heads)
    : student_(student),
      teacher_(teacher_heads ? teacher_heads : student),
      settings_(std::move(settings)) {}

EvalReport Evaluator::empty_report() const {
  EvalReport report;
  for (const data::PromptSpec& spec : settings_.prompts) {
    report.kinds.push_back(spec.name());
    report.multimask[spec.name()] = word(multimask_for(settings_.multimask, spec));
  }
  return report;
}

void Evaluator::evaluate_image(const std::string& image_id, const data::Record& record,
                               const at::Tensor& resized, const at::Tensor& teacher_embedding,
                               EvalReport& report, std::vector<PromptMasks>* masks) {
  at::NoGradGuard no_grad;
  const models::Size2 original{record.image.height, record.image.width};
  student_.model()->eval();
  teacher_.model()->eval();
  auto start = std::chrono::steady_clock::now();
  {
    models::AutocastScope autocast(settings_.amp, student_.model()->device());
    student_.set_image(resized, original);
  }
  teacher_.set_image_embedding(teacher_embedding, original);
  report.timings.student_embed_s += seconds_since(start);

  start = std::chrono::steady_clock::now();
  int used = 0;
  for (const data::Annotation& a : record.annotations) {
    if (used == settings_.max_prompts_per_image) break;
    if (data::rle_area(a.segmentation) == 0) continue;
    ++used;
    const at::Tensor truth_cpu = data::rle_decode(a.segmentation);
    const at::Tensor truth = truth_cpu.to(student_.model()->device());
    for (const data::PromptSpec& spec : settings_.prompts) {
      if (!spec.needs_mask()) continue;  // from the image, below
      std::optional<models::Prompts> prompt = data::make_prompt(a, truth_cpu, spec, settings_.seed);
      if (!prompt) {
        ++report.skipped_prompts;
        continue;
      }
      const Multimask mode = multimask_for(settings_.multimask, spec);
      const bool multimask = mode != Multimask::off;
      const at::Tensor teacher = choose(teacher_.predict(*prompt, multimask), mode, truth);
      const models::Prediction s = student_predict(*prompt, multimask);
      const at::Tensor student = choose(s, mode, teacher);

      PromptOutcome o{image_id, a.id, spec.name(), describe(*prompt)};
      o.width = record.image.width;
      o.height = record.image.height;
      o.iou = mask_iou(student, teacher);
      o.teacher_gt = mask_iou(teacher, truth);
      o.student_gt = mask_iou(mode == Multimask::oracle ? choose(s, mode, truth) : student, truth);
      report.outcomes.push_back(std::move(o));
      if (masks) masks->push_back({*prompt, teacher.cpu(), student.cpu(), truth_cpu});
    }
  }
  for (const data::PromptSpec& spec : settings_.prompts) {
    if (spec.kind == data::PromptKind::everything)
      evaluate_everything(image_id, original, spec, report, masks);
    else if (!spec.needs_mask())
      evaluate_image_prompts(image_id, original, spec, report, masks);
  }
  report.timings.decode_s += seconds_since(start);
  report.images += 1;
}

void Evaluator::evaluate_image_prompts(const std::string& image_id, models::Size2 original,
                                       const data::PromptSpec& spec, EvalReport& report,
                                       std::vector<PromptMasks>* masks) {
  // No ground truth: the teacher keeps its best-scored mask (oracle has nothing to choose by)
  // and the student's is chosen against it.
  const Multimask mode = multimask_for(settings_.multimask, spec);
  const bool multimask = mode != Multimask::off;
  const Multimask teacher_mode = mode == Multimask::oracle ? Multimask::score : mode;
  const double no_truth = std::numeric_limits<double>::quiet_NaN();
  int64_t index = 0;
  for (const models::Prompts& prompt :
       data::image_prompts(spec, original, settings_.seed, image_id)) {
    const at::Tensor teacher = choose(teacher_.predict(prompt, multimask), teacher_mode, {});
    const at::Tensor student = choose(student_predict(prompt, multimask), mode, teacher);
    PromptOutcome o{image_id, index++, spec.name(), describe(prompt)};
    o.width = original[1];
    o.height = original[0];
    o.iou = mask_iou(student, teacher);
    o.teacher_gt = o.student_gt = no_truth;
    report.outcomes.push_back(std::move(o));
    if (masks) masks->push_back({prompt, teacher.cpu(), student.cpu(), {}});
  }
}

void Evaluator::evaluate_everything(const std::string& image_id, models::Size2 original,
                                    const data::PromptSpec& spec, EvalReport& report,
                                    std::vector<PromptMasks>* masks) {
  segment::AmgConfig config = settings_.amg;
  if (spec.count > 0) config.points_per_side = spec.count;
  const std::vector<segment::MaskRecord> teacher =
      segment::AutomaticMaskGenerator(teacher_.model(), config)
          .generate(teacher_.get_image_embedding(), original);
  std::vector<segment::MaskRecord> student;
  {
    models::AutocastScope autocast(settings_.amp, student_.model()->device());
    student = segment::AutomaticMaskGenerator(student_.model(), config)
                  .generate(student_.get_image_embedding(), original);
  }
  report.student_masks += int64_t(student.size());
  const double no_truth = std::numeric_limits<double>::quiet_NaN();
  for (size_t i = 0; i < teacher.size(); ++i) {
    double best = 0;
    size_t best_j = 0;
    for (size_t j = 0; j < student.size(); ++j)
      if (const double iou = segment::rle_iou(teacher[i].rle, student[j].rle); iou > best)
        best = iou, best_j = j;
    models::Prompts point;  // the teacher mask's point prompt, for people
    point.point_coords =
        at::tensor({float(teacher[i].point[0]), float(teacher[i].point[1])}, at::kFloat)
            .view({1, 2});
    point.point_labels = at::ones({1}, at::kInt);
    PromptOutcome o{image_id, int64_t(i), spec.name(),
                    "teacher mask " + std::to_string(i) + " of " + describe(point)};
    o.width = original[1];
    o.height = original[0];
    o.iou = best;
    o.teacher_gt = o.student_gt = no_truth;
    report.outcomes.push_back(std::move(o));
    if (masks)
      masks->push_back({point, data::rle_decode(teacher[i].rle).to(at::kBool),
                        student.empty() ? at::zeros({original[0], original[1]}, at::kBool)
                                        : data::rle_decode(student[best_j].rle).to(at::kBool),
                        at::Tensor()});  // no annotation behind an automatic mask
  }
}

models::Prediction Evaluator::student_predict(const models::Prompts& prompt, bool multimask) {
  models::AutocastScope autocast(settings_.amp, student_.model()->device());
  return student_.predict(prompt, multimask);
}

}  // namespace sd::eval
