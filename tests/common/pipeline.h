#pragma once
#include <string>
#include <vector>

#include "common/fixtures.h"

// Set-up and checks shared by the tests that run the pipeline on data/sample with the
// fixture teacher (training, fine-tuning, evaluation).
namespace sd::testing {

// A small TinyViT student (the last width keeps the 64x64 grid: 320, 448 or 576).
extern const char* const kSmallStudent;

// Writes DIR/teacher.json (the first ViT fixture folder's config) and DIR/student.json
// (kSmallStudent); returns that folder (its weights.pth is a full SAM checkpoint).
ModelFolder write_teacher_and_student(const std::string& dir);
// DIR/student.pth: the encoder of DIR/student.json, randomly initialised from `seed`.
std::string write_random_student(const std::string& dir, int64_t seed);
// `samdistill embed` of data/sample by `teacher` (DIR/teacher.json) into DIR/store, with
// the image cache.
ProgramRun embed_sample(const std::string& dir, const ModelFolder& teacher);

// The "loss" of every step line of RUN/metrics.jsonl (NaN where it was not finite).
std::vector<double> step_losses(const std::string& run);
// The "val_score" lines of RUN/metrics.jsonl, in order.
std::vector<double> validation_scores(const std::string& run);

// Every entry of two state dict files is bitwise equal, in the same order.
void expect_same_weights(const std::string& a, const std::string& b);

// Starts `samdistill <args>` writing into run folder `run`, SIGKILLs it once RUN/metrics.jsonl
// has `steps` step lines, and reports whether it was killed (false: it ended first).
bool kill_after_steps(const std::string& args, const std::string& run, size_t steps);

}  // namespace sd::testing
