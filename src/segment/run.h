#pragma once
#include <string>
#include <vector>

#include "data/dataset.h"
#include "models/autocast.h"
#include "segment/amg_config.h"
#include "util/device.h"

namespace sd::segment {

// What `samdistill segment` does: every image of `data` through the automatic mask generator
// (`everything`) or through the prompts of `prompts_file`, written under `out`:
//   rle  <id>.json: the image's records (record_json), amg.py --convert-to-rle's file; and at
//        the end coco_results.json, every image's masks as COCO results (image_id: the COCO
//        file's id, else the image's id; category_id; score; segmentation; bbox)
//   png  <id>/: 0.png, 1.png, ... and metadata.csv, amg.py's folder
//   overlay: <id>.overlay.png, every mask in colour over the image
// An image whose files are all there is skipped (a rerun continues); SIGINT / SIGTERM stop
// after the current image with everything so far written (sd::Stopped).
struct SegmentRequest {
  std::string student, student_model;  // a full SAM checkpoint or run folder; its architecture
  std::vector<std::string> data;
  std::string images;  // the COCO files' image folder
  data::SubsetSpec subset;
  std::string out;
  bool everything = false;
  std::string prompts_file;  // COCO detection results
  bool multimask = false;    // prompts: the best of three masks
  AmgConfig amg;             // everything; its points_per_batch also batches the prompts
  bool png = false, rle = true, overlay = false;
  DeviceChoice device = DeviceChoice::automatic;
  models::Amp amp = models::Amp::off;
  bool strict = false;
  int max_images = 0;  // the first N of the selection; 0: all
};

struct SegmentSummary {
  size_t images = 0;        // segmented by this run
  size_t skipped_done = 0;  // already done by an earlier run
  size_t masks = 0;         // made by this run
  std::vector<data::Skip> skipped;
  double seconds = 0;
  std::string results;  // coco_results.json, when written
};

// "png", "rle" (several: comma-separated) into the request; sd::Error naming a bad word.
void parse_formats(const std::string& text, SegmentRequest& request);

SegmentSummary run_segment(const SegmentRequest& request);

}  // namespace sd::segment
