#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "segment/amg.h"

// Prompts from a detector: a COCO detection-results file, each record an image's box (and/or
// points), all of an image's prompts run through the mask decoder in batches on one embedding.
namespace sd::segment {

struct Detection {
  bool has_box = false;
  std::array<double, 4> bbox{};  // XYWH, image pixels
  std::vector<std::array<double, 2>> points;
  std::vector<int> labels;  // 1 foreground, 0 background
  double score = 1;
  bool has_score = false;
  int64_t category_id = 1;
};

// [{"image_id": N or "file_name": "...", "bbox": [x, y, w, h], "score": s, "category_id": c,
//   "point_coords": [[x, y], ...], "point_labels": [1, ...]}, ...]: bbox and/or point_coords
// (labels default to 1); sd::Error naming the file and the record otherwise.
struct PromptFile {
  std::string path;
  std::map<int64_t, std::vector<Detection>> by_image_id;
  std::map<std::string, std::vector<Detection>> by_file_name;
};
PromptFile read_prompt_file(const std::string& path);

// The prompts of an image: those naming its image_id (COCO and SA-1B records have one) or its
// file name (the record's, the file's, or its id with or without the extension).
std::vector<Detection> prompts_for(const PromptFile& file, const data::Entry& entry,
                                   const data::Record& record);

// One mask per prompt (the highest predicted IoU of three with `multimask`), in prompt order,
// for the image set on `predictor`; `batch` prompts go through the decoder together.
std::vector<MaskRecord> segment_prompts(models::SamPredictor& predictor,
                                        const std::vector<Detection>& prompts, int batch,
                                        bool multimask, double stability_score_offset);

}  // namespace sd::segment
