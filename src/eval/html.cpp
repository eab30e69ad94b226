#include "eval/html.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "eval/iou.h"
#include "eval/picture.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;

namespace sd::eval {
namespace {

const char* const kStyle = R"(
body{font:14px system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0 20px}
th,td{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
#prompts th[data-key]{cursor:pointer;user-select:none}
#prompts th[data-order=asc]::after{content:" \25B2"}
#prompts th[data-order=desc]::after{content:" \25BC"}
#prompts img{height:120px}
.hist{display:inline-block;margin-right:24px}
.hist rect{fill:#4682b4}
#state{color:#888;font-size:12px}
)";

// Sorting and filtering of the prompt rows, and #sort=KEY on load.
const char* const kScript = R"(
(function () {
  const body = document.querySelector('#prompts tbody');
  const rows = Array.from(body.rows);
  const text = {kind: 1, image: 1};
  let key = 'iou', dir = 1;
  function value(row, k) { const v = row.dataset[k]; return text[k] ? v : parseFloat(v); }
  function sortBy(k, d) {
    key = k; dir = d;
    rows.sort((a, b) => { const x = value(a, k), y = value(b, k); return (x < y ? -1 : x > y ? 1 : 0) * d; });
    rows.forEach(r => body.appendChild(r));
    document.querySelectorAll('#prompts th[data-key]').forEach(th => {
      th.dataset.order = th.dataset.key === k ? (d > 0 ? 'asc' : 'desc') : '';
    });
    const first = rows.find(r => !r.hidden);
    document.getElementById('state').textContent =
        'sorted:' + k + (d > 0 ? '' : ' desc') + ' first:' + (first ? first.id : '');
  }
  document.querySelectorAll('#prompts th[data-key]').forEach(th => th.addEventListener(
      'click', () => sortBy(th.dataset.key, th.dataset.key === key ? -dir : 1)));
  document.querySelectorAll('#kinds input').forEach(box => box.addEventListener('change', () => {
    const on = new Set(Array.from(document.querySelectorAll('#kinds input:checked'), i => i.value));
    rows.forEach(r => { r.hidden = !on.has(r.dataset.kind); });
    sortBy(key, dir);
  }));
  const asked = /sort=(-?)(\w+)/.exec(location.hash);
  sortBy(asked ? asked[2] : 'iou', asked && asked[1] ? -1 : 1);
})();
)";

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

// "-" for the NaN of prompts without a ground truth.
std::string number(double v, const char* format = "%.4f") {
  if (std::isnan(v)) return "-";
  char text[32];
  std::snprintf(text, sizeof text, format, v);
  return text;
}

std::string cell(const std::string& text) { return "<td>" + escape(text) + "</td>"; }
std::string number_cell(double v) { return "<td class=n>" + number(v) + "</td>"; }

std::string summary(const EvalReport& r) {
  const auto miou = r.mean_by_kind(&PromptOutcome::iou);
  const auto teacher = r.mean_by_kind(&PromptOutcome::teacher_gt);
  const auto student = r.mean_by_kind(&PromptOutcome::student_gt);
  const auto count = r.count_by_kind();
  std::string out =
      "<table id=summary><tr><th>prompt kind</th><th>multimask</th><th>prompts</th>"
      "<th>mIoU vs teacher</th><th>teacher vs GT</th><th>student vs GT</th></tr>";
  for (const std::string& kind : r.kinds) {
    if (!count.count(kind)) continue;
    const auto mm = r.multimask.find(kind);
    out += "<tr>" + cell(kind) + cell(mm == r.multimask.end() ? "" : mm->second) + "<td class=n>" +
           std::to_string(count.at(kind)) + "</td>" + number_cell(miou.at(kind)) +
           number_cell(teacher.at(kind)) + number_cell(student.at(kind)) + "</tr>";
  }
  out +=
      "</table><table id=sizes><tr><th>image size</th><th>prompts</th><th>mIoU vs "
      "teacher</th></tr>";
  const auto by_size = r.miou_by_size();
  const auto size_count = r.count_by_size();
  for (const auto& [bucket, value] : by_size)
    out += "<tr>" + cell(bucket) + "<td class=n>" + std::to_string(size_count.at(bucket)) +
           "</td>" + number_cell(value) + "</tr>";
  return out + "</table><p id=totals>" + std::to_string(r.images) + " images, " +
         std::to_string(r.outcomes.size()) + " prompts, " + number(r.timings.total_s, "%.1f") +
         " s</p>";
}

// One bar chart of IoUs in ten bins per kind.
std::string histograms(const EvalReport& r) {
  std::string out;
  for (const std::string& kind : r.kinds) {
    Histogram h;
    for (const PromptOutcome& o : r.outcomes)
      if (o.kind == kind) h.add(o.iou);
    const int64_t top = std::max<int64_t>(1, *std::max_element(h.counts.begin(), h.counts.end()));
    out += "<figure class=hist><svg width=240 height=120 viewBox='0 0 240 120'>";
    for (size_t i = 0; i < h.counts.size(); ++i) {
      const double height = 100.0 * double(h.counts[i]) / double(top);
      out += "<rect x=" + std::to_string(i * 24 + 1) + " y=" + number(100 - height, "%.1f") +
             " width=22 height=" + number(height, "%.1f") + "><title>" + number(i / 10.0, "%.1f") +
             "-" + number((i + 1) / 10.0, "%.1f") + ": " + std::to_string(h.counts[i]) +
             "</title></rect>";
    }
    out +=
        "<text x=0 y=115 font-size=10>0</text><text x=225 y=115 font-size=10>1</text></svg>"
        "<figcaption>" +
        escape(kind) + ": IoU per prompt</figcaption></figure>";
  }
  return out;
}

std::string prompt_rows(const EvalReport& r, const std::set<std::string>& pictures) {
  std::vector<const PromptOutcome*> sorted;
  for (const PromptOutcome& o : r.outcomes) sorted.push_back(&o);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const PromptOutcome* a, const PromptOutcome* b) { return a->iou < b->iou; });
  std::string out;
  for (const PromptOutcome* o : sorted) {
    const std::string id = o->image + "_" + std::to_string(o->annotation) + "_" + o->kind;
    const std::string picture = picture_name(*o);
    out += "<tr id=\"" + escape(id) + "\" data-iou=" + number(o->iou, "%.6f") + " data-kind=\"" +
           escape(o->kind) + "\" data-image=\"" + escape(o->image) +
           "\" data-student_gt=" + number(o->student_gt, "%.6f") +
           " data-teacher_gt=" + number(o->teacher_gt, "%.6f") + ">" + number_cell(o->iou) +
           cell(o->kind) + cell(o->image) + "<td class=n>" + std::to_string(o->annotation) +
           "</td>" + cell(o->prompt) + number_cell(o->teacher_gt) + number_cell(o->student_gt) +
           "<td>" +
           (pictures.count(picture) ? "<img loading=lazy alt=\"" + escape(picture) +
                                          "\" src=\"pictures/" + escape(picture) + "\">"
                                    : std::string("-")) +
           "</td></tr>\n";
  }
  return out;
}

std::string kind_filter(const EvalReport& r) {
  std::string out = "<p id=kinds>kinds:";
  for (const std::string& kind : r.kinds)
    out += " <label><input type=checkbox checked value=\"" + escape(kind) + "\">" + escape(kind) +
           "</label>";
  return out + "</p>";
}

}  // namespace

std::string report_html(const EvalReport& r, const std::set<std::string>& pictures,
                        const std::string& title) {
  return "<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>" + escape(title) +
         "</title><style>" + kStyle + "</style></head><body>\n<h1>" + escape(title) + "</h1>\n" +
         summary(r) + "\n<h2>IoU of the student's masks vs the teacher's</h2>\n" + histograms(r) +
         "\n<h2>Prompts, worst first</h2>\n" + kind_filter(r) +
         "<p id=state hidden></p>\n<table id=prompts><thead><tr><th data-key=iou>IoU</th>"
         "<th data-key=kind>kind</th><th data-key=image>image</th><th>annotation</th>"
         "<th>prompt</th><th data-key=teacher_gt>teacher vs GT</th>"
         "<th data-key=student_gt>student vs GT</th>"
         "<th>image + prompt | ground truth (when annotated) | teacher | student</th></tr></thead>"
         "<tbody>\n" +
         prompt_rows(r, pictures) + "</tbody></table>\n<script>" + kScript +
         "</script>\n</body></html>\n";
}

void write_report_html(const EvalReport& r, const std::string& dir, const std::string& vis_dir,
                       const std::string& title) {
  const fs::path pictures_dir = fs::path(dir) / "pictures";
  fs::create_directories(dir);
  const bool same = !vis_dir.empty() && fs::exists(vis_dir) && fs::exists(pictures_dir) &&
                    fs::equivalent(fs::path(vis_dir), pictures_dir);
  if (!vis_dir.empty() && !same)
    prepare_pictures_folder(pictures_dir.string(), "the page's pictures");
  std::set<std::string> pictures;
  for (const PromptOutcome& o : r.outcomes) {
    const std::string name = picture_name(o);
    if (vis_dir.empty() || !fs::exists(fs::path(vis_dir) / name)) continue;
    if (!same)
      write_file_atomic((pictures_dir / name).string(),
                        read_file((fs::path(vis_dir) / name).string()));
    pictures.insert(name);
  }
  write_file_atomic((fs::path(dir) / "index.html").string(), report_html(r, pictures, title));
}

}  // namespace sd::eval
