#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/fixtures.h"

// Set-up and checks shared by the tests that run the pipeline on data/sample with the
// fixture teacher (training, fine-tuning, evaluation).
namespace sd::testing {

// A small TinyViT student (the last width keeps the 64x64 grid: 320, 448 or 576).
extern const char* const kSmallStudent;

// A suite whose tests share a temporary folder holding teacher.json (the first ViT fixture
// folder's config), student.json (kSmallStudent) and student.pth (that student, randomly
// initialised from a seed). A suite's SetUpTestSuite calls make_folder (when the fixtures
// are present); the folder is removed after its last test; tests skip without fixtures.
class PipelineSuite : public ::testing::Test {
 protected:
  static void make_folder(const std::string& prefix, int64_t student_seed);
  static void TearDownTestSuite();
  void SetUp() override;

  static const std::string& dir();
  static const ModelFolder& teacher();  // its weights.pth is a full SAM checkpoint
  // `samdistill embed` of data/sample by the teacher into dir()/store, with the image cache.
  static ProgramRun embed_sample();

 private:
  static std::string dir_;
  static std::optional<ModelFolder> teacher_;
};

// The "loss" of every step line of RUN/metrics.jsonl (NaN where it was not finite).
std::vector<double> step_losses(const std::string& run);
// The "val_score" lines of RUN/metrics.jsonl, in order.
std::vector<double> validation_scores(const std::string& run);

// Every entry of two state dict files is bitwise equal, in the same order.
void expect_same_weights(const std::string& a, const std::string& b);

// `message` is the refusal of STORE, made by the suite's teacher, when `teacher` (a preset
// or config file) is named instead, exactly: "store 'STORE' was made by another teacher: a
// PRESET FAMILY encoder with weights 'FILE' (sha256 ...), not the one given, a PRESET FAMILY
// encoder (teacher.KEY is A in the store, expected B). Give the teacher that made the store, or
// make ... with `samdistill embed` ...", A and B exactly KEY of the store's manifest and of
// `teacher`, A != B.
void expect_other_teacher_refused(const std::string& message, const std::string& store,
                                  const std::string& teacher);

// How a program that was sent signals ended.
struct SignalledRun {
  bool sent = false;   // the signals were sent (false: it ended first)
  int end_signal = 0;  // the signal that ended it, or 0 when it exited
  int status = 0;      // its exit status when it exited
  std::string output;  // stdout and stderr
};

// Starts `samdistill <args>` (its output into `log`) and, once `ready()` and a little later,
// sends `signals` together; waits for it to end. The program is stopped (SIGSTOP) while they are
// sent, so that each finds it running, whatever the machine's load: none of them can have ended
// it before the next is sent. The same signal twice would arrive once; give different ones.
SignalledRun signal_when(const std::string& args, const std::string& log,
                         const std::function<bool()>& ready, const std::vector<int>& signals);

// signal_when RUN/metrics.jsonl has `steps` step lines (so: inside the next step).
SignalledRun signal_after_steps(const std::string& args, const std::string& run, size_t steps,
                                const std::vector<int>& signals);

// signal_after_steps with SIGKILL; whether it was killed (false: it ended first).
bool kill_after_steps(const std::string& args, const std::string& run, size_t steps);

}  // namespace sd::testing
