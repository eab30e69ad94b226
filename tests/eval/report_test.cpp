#include "eval/report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "util/error.h"

namespace sd::eval {
namespace {

// Five images a..e: b has no prompts, d was skipped (its JSON is bad), the others two each.
data::Dataset five_images() {
  std::vector<data::Entry> entries;
  for (const std::string id : {"a", "b", "c", "d", "e"}) {
    data::Entry& e = entries.emplace_back();
    e.id = id;
    e.image_path = id + ".jpg";
    e.json_path = id + ".json";
  }
  return data::Dataset::from_entries(entries);
}

PromptOutcome outcome(const std::string& image, int64_t annotation, double iou) {
  return {
      image, annotation, "box", "box 1,2,3,4", iou, 0.5, std::numeric_limits<double>::quiet_NaN(),
      640,   480};
}

// What one process evaluating `images` in order reports.
EvalReport whole() {
  EvalReport r;
  r.kinds = {"box"};
  r.multimask = {{"box", "off"}};
  for (const char* id : {"a", "c", "e"})
    for (int64_t k = 0; k < 2; ++k) r.outcomes.push_back(outcome(id, k, 0.1 + 0.7 / double(k + 1)));
  r.skipped = {{"d.json", "bad JSON"}};
  r.images = 4;
  return r;
}

// Its slice r of 2: the images at positions r, r + 2, ...
EvalReport slice(int r) {
  EvalReport s = whole();
  const char* const ids[2] = {"ace", "bd"};
  s.outcomes.clear();
  for (const PromptOutcome& o : whole().outcomes)
    if (std::string(ids[r]).find(o.image) != std::string::npos) s.outcomes.push_back(o);
  s.skipped = r == 1 ? whole().skipped : std::vector<data::Skip>{};
  s.images = r == 0 ? 3 : 1;
  s.timings.decode_s = 1.5;
  return s;
}

void expect_same(const EvalReport& a, const EvalReport& b) {
  nlohmann::json x = report_json(a), y = report_json(b);
  x.erase("timings");
  y.erase("timings");
  EXPECT_EQ(x.dump(), y.dump());  // NaN (no ground truth) is unequal to itself, null in text
  ASSERT_EQ(a.outcomes.size(), b.outcomes.size());
  for (size_t i = 0; i < a.outcomes.size(); ++i) {
    EXPECT_EQ(a.outcomes[i].image, b.outcomes[i].image);
    EXPECT_EQ(a.outcomes[i].annotation, b.outcomes[i].annotation);
  }
}

TEST(EvalReportSlices, TheStateComesBackExactly) {
  const EvalReport r = report_from_state(nlohmann::json::parse(report_state(slice(0)).dump()));
  expect_same(r, slice(0));
  EXPECT_EQ(r.outcomes[1].iou, slice(0).outcomes[1].iou);  // 0.1 + 0.35, to the last bit
  EXPECT_TRUE(std::isnan(r.outcomes[0].student_gt));
  EXPECT_EQ(r.timings.decode_s, 1.5);
}

TEST(EvalReportSlices, MergedInterleavedSlicesAreTheWholeInImageOrder) {
  const EvalReport merged = merge_interleaved({slice(0), slice(1)}, five_images());
  expect_same(merged, whole());
  EXPECT_EQ(merged.timings.decode_s, 3.0);
}

TEST(EvalReportSlices, ASliceOutOfItsImagesOrderIsRefused) {
  EvalReport wrong = slice(0);
  std::swap(wrong.outcomes.front(), wrong.outcomes.back());
  EXPECT_THROW(merge_interleaved({wrong, slice(1)}, five_images()), Error);
}

}  // namespace
}  // namespace sd::eval
