// The eval page: what it holds, and (with Chromium) that it renders without console errors,
// sorts worst first, and looks as it should (a screenshot under build/test-artifacts).
#include "eval/html.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "common/browser.h"
#include "common/fixtures.h"
#include "eval/picture.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;

namespace sd::eval {
namespace {

PromptOutcome outcome(const std::string& image, int64_t annotation, const std::string& kind,
                      double iou) {
  PromptOutcome o{image, annotation, kind, "box 1,2,30,40"};
  o.iou = iou;
  o.teacher_gt = 0.9;
  o.student_gt = iou * 0.9;
  o.width = 1500;
  o.height = 2250;
  return o;
}

EvalReport sample_report() {
  EvalReport r;
  r.kinds = {"box", "point"};
  r.multimask = {{"box", "off"}, {"point", "score"}};
  r.outcomes = {outcome("sa_1", 11, "box", 0.91), outcome("sa_1", 12, "point", 0.35),
                outcome("sa_2", 21, "box", 0.62), outcome("sa_2", 22, "point", 0.97),
                outcome("sa_2", 23, "box", 0.12)};
  r.images = 2;
  r.timings.total_s = 3.5;
  return r;
}

class EvalPage : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::make_temp_dir("samdistill-html");
    // Pictures of two outcomes, as --vis writes them.
    fs::create_directories(dir_ + "/vis");
    for (size_t i : {0, 4}) {
      at::Tensor rgb = at::full({60, 180, 3}, 40 + 50 * int(i), at::kByte);
      write_png(dir_ + "/vis/" + picture_name(report_.outcomes[i]), rgb);
    }
    write_report_html(report_, dir_ + "/page", dir_ + "/vis", "test report");
    html_ = read_file(dir_ + "/page/index.html");
  }
  void TearDown() override { fs::remove_all(dir_); }

  EvalReport report_ = sample_report();
  std::string dir_, html_;
};

// Prompts without a ground truth (grid@N) have no "vs GT": a dash, not "nan"; the sort state
// the tests read is in the page but not shown.
TEST(EvalPageCells, NoValueIsADashAndTheSortStateIsHidden) {
  EvalReport r = sample_report();
  r.outcomes[1].teacher_gt = r.outcomes[1].student_gt = std::nan("");
  const std::string page = report_html(r, {}, "t");
  EXPECT_EQ(page.find("nan"), std::string::npos);
  EXPECT_NE(page.find("<td class=n>-</td><td class=n>-</td>"), std::string::npos);
  EXPECT_NE(page.find("<p id=state hidden></p>"), std::string::npos);
  EXPECT_EQ(report_table(r).find("nan"), std::string::npos);
}

TEST_F(EvalPage, HoldsTheSummaryHistogramsAndEveryPromptWorstFirst) {
  EXPECT_NE(html_.find("<table id=summary>"), std::string::npos);
  EXPECT_NE(html_.find("2-4 MP"), std::string::npos) << "the image-size bucket";
  EXPECT_NE(html_.find("2 images, 5 prompts, 3.5 s"), std::string::npos);
  size_t svgs = 0;
  for (size_t at = 0; (at = html_.find("<svg", at)) != std::string::npos; ++at) ++svgs;
  EXPECT_EQ(svgs, 2u) << "a histogram per kind";
  const size_t worst = html_.find("id=\"sa_2_23_box\""), next = html_.find("id=\"sa_1_12_point\""),
               best = html_.find("id=\"sa_2_22_point\"");
  ASSERT_NE(worst, std::string::npos);
  EXPECT_LT(worst, next);
  EXPECT_LT(next, best);
  EXPECT_TRUE(fs::exists(dir_ + "/page/pictures/" + picture_name(report_.outcomes[4])));
  EXPECT_NE(html_.find("src=\"pictures/" + picture_name(report_.outcomes[4]) + "\""),
            std::string::npos);
  EXPECT_EQ(html_.find("http"), std::string::npos) << "nothing from the network";
  EXPECT_EQ(html_.find("<script src"), std::string::npos);
}

class EvalPageInChromium : public EvalPage {
 protected:
  void SetUp() override {
    browser_ = testing::chromium();
    if (browser_.empty())
      GTEST_SKIP() << "no headless Chromium (Debian's `chromium`): the page is not rendered";
    EvalPage::SetUp();
  }
  // The page after its script ran, loaded with `hash`; console messages go to `log`.
  std::string dom(const std::string& hash, std::string* log = nullptr) {
    return testing::rendered_dom(browser_, dir_ + "/page/index.html", hash, log);
  }
  std::string browser_;
};

std::string state_of(const std::string& dom) { return testing::page_state(dom); }

TEST_F(EvalPageInChromium, RendersWithoutConsoleErrorsAndSortsWorstFirst) {
  std::string log;
  EXPECT_EQ(state_of(dom("#sort=-iou", &log)), "sorted:iou desc first:sa_2_22_point");
  EXPECT_EQ(log.find("CONSOLE"), std::string::npos) << "the page logged:\n" << log;
  EXPECT_EQ(state_of(dom("#sort=iou")), "sorted:iou first:sa_2_23_box");
  EXPECT_EQ(state_of(dom("#sort=student_gt")), "sorted:student_gt first:sa_2_23_box");
}

TEST_F(EvalPageInChromium, ScreenshotIsKeptAsATestArtifact) {
  const std::string dir =
      fs::path(testing::binary_path()).parent_path().string() + "/test-artifacts";
  fs::create_directories(dir);
  const std::string shot = dir + "/eval_report.png";
  fs::remove(shot);
  testing::screenshot(browser_, dir_ + "/page/index.html", shot, 1280, 900);
  ASSERT_TRUE(fs::exists(shot));
  EXPECT_EQ(read_file(shot).substr(1, 3), "PNG");
}

}  // namespace
}  // namespace sd::eval
