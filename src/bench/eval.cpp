#include "bench/eval.h"

#include <ATen/ATen.h>

#include "data/records.h"
#include "data/rle.h"
#include "eval/evaluator.h"
#include "models/config.h"
#include "models/sam.h"

namespace sd::bench {
using namespace eval;
namespace {

// A record of `n` rectangles of growing size on a 1200x1800 image.
data::Record rectangles(int n) {
  data::Record record;
  record.image = {1, 1800, 1200, "bench.jpg"};
  for (int i = 0; i < n; ++i) {
    at::Tensor mask = at::zeros({1200, 1800}, at::kByte);
    const int64_t r0 = 50 + 20 * i, c0 = 80 + 30 * i, h = 100 + 40 * i, w = 150 + 60 * i;
    mask.slice(0, r0, r0 + h).slice(1, c0, c0 + w).fill_(1);
    data::Annotation a;
    a.id = i;
    a.segmentation = data::rle_encode(mask);
    a.bbox = {double(c0), double(r0), double(w), double(h)};
    a.point_coords = {{c0 + w / 2.0, r0 + h / 2.0}};
    record.annotations.push_back(a);
  }
  return record;
}

}  // namespace

nlohmann::json bench_eval(int prompts) {
  // A small TinyViT keeps the encoder out of the way; the decoder is every SAM's.
  models::TinyViTConfig student;
  student.embed_dims = {16, 32, 64, 320};
  student.depths = {1, 1, 1, 1};
  student.num_heads = {1, 1, 2, 5};
  at::manual_seed(0);
  EvalSettings settings;
  settings.prompts = data::parse_prompt_specs("box,point");
  Evaluator evaluator(models::build_sam(student), settings);
  const at::Tensor resized = at::randint(0, 256, {683, 1024, 3}, at::kByte);
  const at::Tensor teacher = at::randn({1, 256, 64, 64});
  EvalReport warm = evaluator.empty_report();
  evaluator.evaluate_image("bench", rectangles(1), resized, teacher, warm);
  EvalReport report = evaluator.empty_report();
  evaluator.evaluate_image("bench", rectangles(std::max(1, prompts / 2)), resized, teacher, report);
  return {{"eval_prompts_per_s", double(report.outcomes.size()) / report.timings.decode_s}};
}

}  // namespace sd::bench
