#pragma once
#include <string>
#include <vector>

#include "data/dataset.h"
#include "eval/evaluator.h"
#include "eval/report.h"
#include "models/sam.h"

// `samdistill eval` as a library call: load both models, walk the images, build the report.
namespace sd::eval {

struct EvalRequest {
  std::string teacher;             // preset or JSON config; "": the store's, else vit_h
  std::string teacher_checkpoint;  // full SAM checkpoint (file or run folder)
  std::string store;               // teacher embeddings from here: the teacher never runs
  std::string student;             // weights: a file or run folder
  std::string student_model = "vit_t";  // when `student` is not a run folder
  std::vector<std::string> data;   // SA-1B folders (records, and images the store lacks)
  data::SubsetSpec subset;
  int max_images = 0;              // 0: all
  EvalSettings settings;
  std::string device = "cpu";
  // For each prompt of the first `vis_images` images, a PNG [image with the prompt | teacher's
  // mask (blue) | student's mask (orange)] named <image>_<annotation>_<kind>_iou<IoU>.png.
  std::string vis_dir;
  int vis_images = 4;
};

// The student's encoder with the teacher's prompt encoder and mask decoder, from
// `teacher_checkpoint` when given, else from `student` when it is a full SAM checkpoint;
// sd::Error saying which flag to give otherwise.
models::Sam load_student_sam(const EvalRequest& request);

// Runs the evaluation (a progress line on stderr). sd::Error on bad input, naming the file,
// key or flag at fault; a store not made by the given teacher is refused naming the field.
EvalReport run_eval(const EvalRequest& request);

}  // namespace sd::eval
