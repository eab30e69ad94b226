// The evaluation with the fixture teacher on data/sample: an identical student agrees
// exactly, the store gives what the teacher model gives, and bad combinations are refused.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/pipeline.h"
#include "eval/run.h"
#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "store/embed.h"

namespace fs = std::filesystem;

namespace sd::testing {
namespace {

class EvalRef : public PipelineSuite {
 protected:
  static void SetUpTestSuite() {
    if (!fixtures_present()) return;
    make_folder("samdistill-eval", 3);

    store::EmbedOptions o;
    o.teacher = dir() + "/teacher.json";
    o.teacher_checkpoint = teacher().file("weights.pth");
    o.data = {data_sample()};
    o.subset.list_file = dir() + "/first.txt";
    std::ofstream(o.subset.list_file) << first_image() << "\n";
    o.store = dir() + "/store";
    o.dtype = store::DType::fp32;
    store::embed(o);
  }

  static std::string first_image() {
    std::vector<std::string> ids;
    for (const auto& f : fs::directory_iterator(data_sample()))
      if (f.path().extension() == ".jpg") ids.push_back(f.path().stem().string());
    std::sort(ids.begin(), ids.end());
    return ids.at(0);
  }

  // One image, three annotations, every prompt kind; the fixture teacher's decoder.
  static eval::EvalRequest request() {
    eval::EvalRequest r;
    r.teacher = dir() + "/teacher.json";
    r.teacher_checkpoint = teacher().file("weights.pth");
    r.student = dir() + "/student.pth";
    r.student_model = dir() + "/student.json";
    r.data = {data_sample()};
    r.max_images = 1;
    r.settings.prompts = data::parse_prompt_specs("box,point,center,fgbg@100");
    r.settings.max_prompts_per_image = 3;
    return r;
  }
};

TEST_F(EvalRef, StudentIdenticalToTheTeacherScoresExactlyOne) {
  eval::EvalRequest r = request();
  r.student = teacher().file("weights.pth");  // a ViT student is allowed
  r.student_model = dir() + "/teacher.json";
  eval::EvalReport report = eval::run_eval(r);
  nlohmann::json j = eval::report_json(report);
  for (const std::string kind : {"box", "point", "center", "fgbg@100"}) {
    ASSERT_TRUE(j["miou"].contains(kind)) << j.dump();
    EXPECT_EQ(j["miou"][kind].get<double>(), 1.0) << kind;
    EXPECT_GE(j["count"][kind].get<int>(), 1) << kind;  // fgbg may find no room for a point
    EXPECT_EQ(j["miou_gt"]["teacher"][kind], j["miou_gt"]["student"][kind]) << kind;
  }
  for (const eval::PromptOutcome& o : report.outcomes) EXPECT_EQ(o.iou, 1.0) << o.kind;
  EXPECT_EQ(j["histogram"]["box"]["counts"][9].get<int>(), 3);
  EXPECT_EQ(report.images, 1);
}

// everything: both models' automatic masks. The fixture weights are seeded random values: the
// lowered thresholds of tests/segment keep masks (SAM's would keep none).
TEST_F(EvalRef, EverythingScoresEachTeacherMaskByTheBestStudentMask) {
  eval::EvalRequest r = request();
  r.settings.prompts = data::parse_prompt_specs("everything@6");
  r.settings.amg.pred_iou_thresh = 0.12;
  r.settings.amg.stability_score_thresh = 0.19;
  r.settings.amg.stability_score_offset = 0.05;
  r.settings.amg.box_nms_thresh = 1.0;
  eval::EvalRequest same = r;
  same.student = teacher().file("weights.pth");
  same.student_model = dir() + "/teacher.json";
  const nlohmann::json identical = eval::report_json(eval::run_eval(same))["everything"];
  EXPECT_GT(identical["teacher_masks"].get<int>(), 5) << identical.dump();
  EXPECT_EQ(identical["student_masks"], identical["teacher_masks"]);
  EXPECT_EQ(identical["agreement"].get<double>(), 1.0);
  EXPECT_EQ(identical["recall@0.75"].get<double>(), 1.0);

  const eval::EvalReport report = eval::run_eval(r);  // a random student
  const nlohmann::json j = eval::report_json(report);
  const nlohmann::json& e = j["everything"];
  EXPECT_EQ(e["teacher_masks"], identical["teacher_masks"]);
  EXPECT_EQ(j["count"]["everything@6"], e["teacher_masks"]);
  EXPECT_LT(e["agreement"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(e["agreement"].get<double>(), j["miou"]["everything@6"].get<double>());
  EXPECT_GE(e["recall@0.5"].get<double>(), e["recall@0.75"].get<double>());
  EXPECT_PRED2(contains, eval::report_table(report), "everything: ");
}

TEST_F(EvalRef, StoreGivesWhatTheTeacherModelGives) {
  eval::EvalReport from_model = eval::run_eval(request());
  eval::EvalRequest r = request();
  r.store = dir() + "/store";
  eval::EvalReport from_store = eval::run_eval(r);
  ASSERT_GE(from_model.outcomes.size(), 9u);
  ASSERT_EQ(from_store.outcomes.size(), from_model.outcomes.size());
  bool below_one = false;
  for (size_t i = 0; i < from_model.outcomes.size(); ++i) {
    const eval::PromptOutcome &m = from_model.outcomes[i], &s = from_store.outcomes[i];
    EXPECT_EQ(m.prompt, s.prompt);
    EXPECT_EQ(m.iou, s.iou) << m.kind << " " << m.annotation;
    EXPECT_EQ(m.teacher_gt, s.teacher_gt);
    EXPECT_EQ(m.student_gt, s.student_gt);
    below_one |= m.iou < 1.0;
  }
  EXPECT_TRUE(below_one) << "a random student should not agree with the teacher everywhere";
}

// The store holds the first image alone: the others are counted and the command that makes
// their embeddings named, before any work.
TEST_F(EvalRef, ImagesTheStoreLacksAreNamedWithTheCommandThatMakesThem) {
  eval::EvalRequest r = request();
  r.store = dir() + "/store";
  r.max_images = 3;
  const std::string message = error_of([&] { eval::run_eval(r); });
  EXPECT_PRED2(contains, message,
               "store '" + r.store + "' has no embedding for 2 of the 3 images selected");
  EXPECT_PRED2(contains, message, "make them with `samdistill embed`");
}

TEST_F(EvalRef, StoreOfAnotherTeacherIsRefused) {
  eval::EvalRequest r = request();
  r.store = dir() + "/store";
  r.teacher = "vit_b";
  r.teacher_checkpoint.clear();
  expect_other_teacher_refused(error_of([&] { eval::run_eval(r); }), r.store, "vit_b");
}

TEST_F(EvalRef, EncoderOnlyStudentWithoutTeacherWeightsNamesTheFlag) {
  eval::EvalRequest r = request();
  r.store = dir() + "/store";
  r.teacher_checkpoint.clear();
  EXPECT_PRED2(contains, error_of([&] { eval::run_eval(r); }), "--teacher-checkpoint");
}

TEST_F(EvalRef, OracleKeepsTheMaskClosestToTheGroundTruth) {
  eval::EvalRequest r = request();
  r.settings.prompts = data::parse_prompt_specs("point,center");  // score mode by default
  eval::EvalReport scored = eval::run_eval(r);
  r.settings.multimask = eval::Multimask::oracle;
  eval::EvalReport oracle = eval::run_eval(r);
  EXPECT_EQ(eval::report_json(oracle)["multimask"]["point"], "oracle");
  ASSERT_EQ(oracle.outcomes.size(), scored.outcomes.size());
  bool better = false;
  for (size_t i = 0; i < oracle.outcomes.size(); ++i) {
    const eval::PromptOutcome &o = oracle.outcomes[i], &s = scored.outcomes[i];
    ASSERT_EQ(o.prompt, s.prompt);
    // The best of the three masks against the annotation, for both models.
    EXPECT_GE(o.teacher_gt, s.teacher_gt) << o.kind << " " << o.annotation;
    EXPECT_GE(o.student_gt, s.student_gt) << o.kind << " " << o.annotation;
    better |= o.teacher_gt > s.teacher_gt || o.student_gt > s.student_gt;
  }
  EXPECT_TRUE(better)
      << "the highest-scored mask was the closest every time: the test shows nothing";
}

TEST_F(EvalRef, AFineTunedStudentBringsItsOwnDecoder) {
  // The student as a full SAM checkpoint whose mask decoder differs from the teacher's.
  io::StateDict full = io::read_state_dict(teacher().file("weights.pth"));
  io::StateDict student;
  for (const auto& [key, value] : io::read_state_dict(dir() + "/student.pth"))
    student.emplace_back("image_encoder." + key, value);
  for (auto [key, value] : full) {
    if (key.rfind("image_encoder.", 0) == 0) continue;
    if (key.rfind("mask_decoder.", 0) == 0) value = value + 0.05 * at::randn_like(value);
    student.emplace_back(key, value);
  }
  const std::string path = dir() + "/finetuned.pth";
  io::write_state_dict(path, student);
  eval::EvalRequest r = request();
  r.student = path;
  r.settings.prompts = data::parse_prompt_specs("box");
  eval::EvalReport own = eval::run_eval(r);  // auto: its own decoder
  r.student_decoder = eval::StudentDecoder::teacher;
  eval::EvalReport teachers = eval::run_eval(r);
  r.student = dir() + "/student.pth";
  eval::EvalReport encoder_only = eval::run_eval(r);
  ASSERT_EQ(own.outcomes.size(), teachers.outcomes.size());
  bool differs = false;
  for (size_t i = 0; i < own.outcomes.size(); ++i) {
    EXPECT_EQ(teachers.outcomes[i].iou, encoder_only.outcomes[i].iou);
    EXPECT_EQ(own.outcomes[i].teacher_gt, teachers.outcomes[i].teacher_gt)
        << "the teacher's masks are the teacher's";
    differs |= own.outcomes[i].iou != teachers.outcomes[i].iou;
  }
  EXPECT_TRUE(differs);
  r.student_decoder = eval::StudentDecoder::own;
  EXPECT_PRED2(contains, error_of([&] { eval::run_eval(r); }), "holds no prompt encoder");
}

}  // namespace
}  // namespace sd::testing
