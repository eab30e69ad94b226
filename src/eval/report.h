#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace sd::eval {

// One prompt's outcome: the student's mask against the teacher's, and both against the
// annotation's (ground-truth) mask, each IoU at the original resolution.
struct PromptOutcome {
  std::string image;                      // entry id, e.g. "sa_100001"
  int64_t annotation = 0;                 // annotation id; grid and random: the point's index
  std::string kind;                       // data::PromptSpec::name()
  std::string prompt;                     // the prompt in original pixels, for people
  double iou = 0;                         // student vs teacher
  double teacher_gt = 0, student_gt = 0;  // NaN for grid and random (no annotation)
  int64_t width = 0, height = 0;          // the image's
};

// The image-size bucket of the report: "< 1 MP", "1-2 MP", "2-4 MP" or ">= 4 MP".
std::string size_bucket(int64_t width, int64_t height);

struct Timings {
  double teacher_embed_s = 0;  // teacher encoder runs, or store reads
  double student_embed_s = 0;  // student encoder runs
  double decode_s = 0;         // prompt encoder + mask decoder + upscaling + IoUs, both models
  double total_s = 0;
};

struct EvalReport {
  std::vector<std::string> kinds;                // in the order asked for
  std::map<std::string, std::string> multimask;  // kind -> score | oracle | off
  std::vector<PromptOutcome> outcomes;
  int64_t images = 0;               // evaluated
  std::vector<data::Skip> skipped;  // records not evaluated (bad image, JSON or RLE; orphans)
  int64_t skipped_prompts = 0;      // annotations that could not give a prompt of a kind
  int64_t student_masks = 0;        // everything: the student's automatic masks (the teacher's
                                    // are the outcomes)
  Timings timings;

  // Mean of `field` over the outcomes of each kind (kinds without outcomes left out).
  std::map<std::string, double> mean_by_kind(double PromptOutcome::*field) const;
  std::map<std::string, int64_t> count_by_kind() const;
  // Mean student-vs-teacher IoU and count per image-size bucket.
  std::map<std::string, double> miou_by_size() const;
  std::map<std::string, int64_t> count_by_size() const;
};

// {"miou": {kind: value}, "count": {kind: n}, "miou_gt": {"teacher": {...}, "student": {...}},
//  "histogram": {kind: {"edges", "counts"}}, "worst": [{image, annotation, kind, prompt, iou}],
//  "timings": {..., "prompts_per_s"}, "images", "prompts", "skipped": [{"file", "reason"}]
//  (records not evaluated), "skipped_prompts", "multimask"}; with everything outcomes also
//  "everything": {"teacher_masks", "student_masks", "agreement" (the mean best IoU of the
//  teacher's masks), "recall@0.5", "recall@0.75" (fractions of the teacher's masks matched)}.
nlohmann::json report_json(const EvalReport& report, size_t worst = 20);

// Every field of `report`, for report_from_state: how a launched eval's ranks send their
// reports to rank 0. Numbers come back exactly (NaN as null).
nlohmann::json report_state(const EvalReport& report);
EvalReport report_from_state(const nlohmann::json& state);

// The report one evaluation of `images` in their order makes, from the reports of their
// interleaved slices (slices[r]: the images at positions r, r + W, ..., W = slices.size()):
// outcomes and skipped records in image order, counts and timings summed. sd::Error when a
// slice's report holds what its images do not explain.
EvalReport merge_interleaved(const std::vector<EvalReport>& slices, const data::Dataset& images);

// The same summary as a table for the console: one row per kind, a line of totals, and a
// footnote saying what was skipped and why (each skipped record's file and reason).
std::string report_table(const EvalReport& report);

}  // namespace sd::eval
