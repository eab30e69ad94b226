#include "eval/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "eval/iou.h"
#include "util/error.h"
#include "util/text.h"

namespace sd::eval {

std::map<std::string, double> EvalReport::mean_by_kind(double PromptOutcome::*field) const {
  std::map<std::string, double> sum;
  for (const PromptOutcome& o : outcomes) sum[o.kind] += o.*field;
  std::map<std::string, int64_t> n = count_by_kind();
  for (auto& [kind, value] : sum) value /= double(n[kind]);
  return sum;
}

std::map<std::string, int64_t> EvalReport::count_by_kind() const {
  std::map<std::string, int64_t> n;
  for (const PromptOutcome& o : outcomes) n[o.kind] += 1;
  return n;
}

std::string size_bucket(int64_t width, int64_t height) {
  const double mp = double(width) * double(height) / 1e6;
  return mp < 1 ? "< 1 MP" : mp < 2 ? "1-2 MP" : mp < 4 ? "2-4 MP" : ">= 4 MP";
}

std::map<std::string, double> EvalReport::miou_by_size() const {
  std::map<std::string, double> sum;
  for (const PromptOutcome& o : outcomes) sum[size_bucket(o.width, o.height)] += o.iou;
  std::map<std::string, int64_t> n = count_by_size();
  for (auto& [bucket, value] : sum) value /= double(n[bucket]);
  return sum;
}

std::map<std::string, int64_t> EvalReport::count_by_size() const {
  std::map<std::string, int64_t> n;
  for (const PromptOutcome& o : outcomes) n[size_bucket(o.width, o.height)] += 1;
  return n;
}

nlohmann::json report_json(const EvalReport& r, size_t worst) {
  std::map<std::string, Histogram> histograms;
  for (const PromptOutcome& o : r.outcomes) histograms[o.kind].add(o.iou);
  nlohmann::json hist = nlohmann::json::object();
  for (const auto& [kind, h] : histograms) hist[kind] = h.to_json();

  std::vector<const PromptOutcome*> sorted;
  for (const PromptOutcome& o : r.outcomes) sorted.push_back(&o);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const PromptOutcome* a, const PromptOutcome* b) { return a->iou < b->iou; });
  nlohmann::json worst_list = nlohmann::json::array();
  for (size_t i = 0; i < std::min(worst, sorted.size()); ++i)
    worst_list.push_back({{"image", sorted[i]->image},
                          {"annotation", sorted[i]->annotation},
                          {"kind", sorted[i]->kind},
                          {"prompt", sorted[i]->prompt},
                          {"iou", sorted[i]->iou}});

  const double prompts = double(r.outcomes.size());
  nlohmann::json out = {
      {"miou", r.mean_by_kind(&PromptOutcome::iou)},
      {"count", r.count_by_kind()},
      {"miou_gt",
       {{"teacher", r.mean_by_kind(&PromptOutcome::teacher_gt)},
        {"student", r.mean_by_kind(&PromptOutcome::student_gt)}}},
      {"histogram", hist},
      {"worst", worst_list},
      {"timings",
       {{"teacher_embed_s", r.timings.teacher_embed_s},
        {"student_embed_s", r.timings.student_embed_s},
        {"decode_s", r.timings.decode_s},
        {"total_s", r.timings.total_s},
        {"prompts_per_s", r.timings.decode_s > 0 ? prompts / r.timings.decode_s : 0.0}}},
      {"images", r.images},
      {"prompts", r.outcomes.size()},
      {"skipped", data::skips_json(r.skipped)},
      {"skipped_prompts", r.skipped_prompts},
      {"multimask", r.multimask}};
  int64_t teacher_masks = 0, above_half = 0, above_three_quarters = 0;
  double sum = 0;
  for (const PromptOutcome& o : r.outcomes) {
    if (!starts_with(o.kind, "everything")) continue;
    ++teacher_masks;
    sum += o.iou;
    above_half += o.iou >= 0.5;
    above_three_quarters += o.iou >= 0.75;
  }
  if (teacher_masks > 0 || r.student_masks > 0) {
    const double n = double(std::max<int64_t>(teacher_masks, 1));
    out["everything"] = {{"teacher_masks", teacher_masks},
                         {"student_masks", r.student_masks},
                         {"agreement", sum / n},
                         {"recall@0.5", double(above_half) / n},
                         {"recall@0.75", double(above_three_quarters) / n}};
  }
  return out;
}

namespace {

// A number of report_state's: NaN went as null.
double number(const nlohmann::json& v) {
  return v.is_null() ? std::numeric_limits<double>::quiet_NaN() : v.get<double>();
}

// Whether a Skip's `file` is the entry's (its image, its JSON, or the id of an image without a
// file: ImageReader's choice).
bool names(const data::Entry& entry, const std::string& file) {
  return file == entry.image_path || file == entry.json_path || file == entry.id;
}

}  // namespace

nlohmann::json report_state(const EvalReport& r) {
  nlohmann::json outcomes = nlohmann::json::array();
  for (const PromptOutcome& o : r.outcomes)
    outcomes.push_back({o.image, o.annotation, o.kind, o.prompt, o.iou, o.teacher_gt, o.student_gt,
                        o.width, o.height});
  const Timings& t = r.timings;
  return {{"kinds", r.kinds},
          {"multimask", r.multimask},
          {"outcomes", outcomes},
          {"images", r.images},
          {"skipped", data::skips_json(r.skipped)},
          {"skipped_prompts", r.skipped_prompts},
          {"student_masks", r.student_masks},
          {"timings", {t.teacher_embed_s, t.student_embed_s, t.decode_s, t.total_s}}};
}

EvalReport report_from_state(const nlohmann::json& s) {
  EvalReport r;
  r.kinds = s.at("kinds").get<std::vector<std::string>>();
  r.multimask = s.at("multimask").get<std::map<std::string, std::string>>();
  for (const nlohmann::json& o : s.at("outcomes"))
    r.outcomes.push_back(
        {o[0], o[1], o[2], o[3], number(o[4]), number(o[5]), number(o[6]), o[7], o[8]});
  r.images = s.at("images");
  for (const nlohmann::json& k : s.at("skipped"))
    r.skipped.push_back({k.at("file"), k.at("reason")});
  r.skipped_prompts = s.at("skipped_prompts");
  r.student_masks = s.at("student_masks");
  const nlohmann::json& t = s.at("timings");
  r.timings = {t[0], t[1], t[2], t[3]};
  return r;
}

EvalReport merge_interleaved(const std::vector<EvalReport>& slices, const data::Dataset& images) {
  EvalReport all;
  all.kinds = slices.at(0).kinds;  // the same settings made every slice's
  all.multimask = slices.at(0).multimask;
  const size_t n = slices.size();
  std::vector<size_t> outcome(n, 0), skip(n, 0);
  for (size_t p = 0; p < images.size(); ++p) {
    const data::Entry& entry = images[p];
    const EvalReport& slice = slices[p % n];
    for (size_t& o = outcome[p % n];
         o < slice.outcomes.size() && slice.outcomes[o].image == entry.id; ++o)
      all.outcomes.push_back(slice.outcomes[o]);
    for (size_t& k = skip[p % n]; k < slice.skipped.size() && names(entry, slice.skipped[k].file);
         ++k)
      all.skipped.push_back(slice.skipped[k]);
  }
  for (size_t r = 0; r < n; ++r) {
    const EvalReport& slice = slices[r];
    if (outcome[r] != slice.outcomes.size() || skip[r] != slice.skipped.size())
      throw Error("eval: the report of slice " + std::to_string(r) + " of " + std::to_string(n) +
                  " holds images or skipped records out of its images' order");
    all.images += slice.images;
    all.skipped_prompts += slice.skipped_prompts;
    all.student_masks += slice.student_masks;
    all.timings.teacher_embed_s += slice.timings.teacher_embed_s;
    all.timings.student_embed_s += slice.timings.student_embed_s;
    all.timings.decode_s += slice.timings.decode_s;
    all.timings.total_s = std::max(all.timings.total_s, slice.timings.total_s);
  }
  return all;
}

namespace {

// "0.8123", or "-" for the NaN of prompts without a ground truth.
std::string shown(double v) {
  if (std::isnan(v)) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.4f", v);
  return text;
}

}  // namespace

std::string report_table(const EvalReport& r) {
  auto miou = r.mean_by_kind(&PromptOutcome::iou);
  auto teacher = r.mean_by_kind(&PromptOutcome::teacher_gt);
  auto student = r.mean_by_kind(&PromptOutcome::student_gt);
  auto count = r.count_by_kind();
  std::ostringstream out;
  char line[160];
  std::snprintf(line, sizeof line, "%-12s %-9s %7s %10s %12s %12s\n", "prompt", "multimask",
                "count", "mIoU", "teacher-GT", "student-GT");
  out << line;
  for (const std::string& kind : r.kinds) {
    auto mm = r.multimask.find(kind);
    if (!count.count(kind)) {
      std::snprintf(line, sizeof line, "%-12s %-9s %7d %10s %12s %12s\n", kind.c_str(),
                    mm == r.multimask.end() ? "" : mm->second.c_str(), 0, "-", "-", "-");
    } else {
      std::snprintf(line, sizeof line, "%-12s %-9s %7lld %10.4f %12s %12s\n", kind.c_str(),
                    mm == r.multimask.end() ? "" : mm->second.c_str(), (long long)count[kind],
                    miou[kind], shown(teacher[kind]).c_str(), shown(student[kind]).c_str());
    }
    out << line;
  }
  std::snprintf(line, sizeof line,
                "%lld images, %zu prompts; %.1f s: teacher %.1f s, student %.1f s, "
                "decoding %.1f s\n",
                (long long)r.images, r.outcomes.size(), r.timings.total_s,
                r.timings.teacher_embed_s, r.timings.student_embed_s, r.timings.decode_s);
  out << line;
  if (const nlohmann::json j = report_json(r, 0); j.contains("everything")) {
    const nlohmann::json& e = j["everything"];
    std::snprintf(line, sizeof line,
                  "everything: %lld teacher masks, %lld student masks; agreement %.4f, "
                  "recall@0.5 %.4f, recall@0.75 %.4f\n",
                  (long long)e["teacher_masks"].get<int64_t>(),
                  (long long)e["student_masks"].get<int64_t>(), e["agreement"].get<double>(),
                  e["recall@0.5"].get<double>(), e["recall@0.75"].get<double>());
    out << line;
  }
  if (r.skipped_prompts > 0)
    out << "skipped " << r.skipped_prompts
        << " prompts: annotations that give none of that kind (a point prompt needs the "
           "annotation's point_coords, fgbg@D a background pixel at distance D)\n";
  if (!r.skipped.empty()) {
    out << "skipped " << r.skipped.size() << " images (bad records, not evaluated):\n";
    for (const data::Skip& s : r.skipped) out << "  " << data::describe(s) << "\n";
  }
  return out.str();
}

}  // namespace sd::eval
