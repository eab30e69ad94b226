#pragma once
#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "segment/amg.h"

// What `segment` writes, in the forms of SAM's scripts/amg.py.
namespace sd::segment {

// A record as SAM's generate() returns it with output_mode="coco_rle" (amg.py
// --convert-to-rle): segmentation {size, counts}, area, bbox (XYWH), predicted_iou,
// point_coords, stability_score, crop_box (XYWH).
nlohmann::json record_json(const MaskRecord& mask);

// amg.py's metadata.csv: a header and one row per mask, numbers as Python's str() prints them.
std::string metadata_csv(const std::vector<MaskRecord>& masks);

// amg.py's folder of one image: 0.png, 1.png, ... (1-bit greyscale, white = mask, read as 0/255
// by OpenCV as amg.py's 8-bit ones) and metadata.csv, written last. Each file atomic.
void write_mask_folder(const std::string& dir, const std::vector<MaskRecord>& masks);

// The image with every mask blended in a colour of its own, the largest first (SAM's
// show_anns), uint8 HxWx3.
at::Tensor overlay(const at::Tensor& rgb, const std::vector<MaskRecord>& masks);

// Python's str() of a float: the shortest text that reads back as the same double.
std::string python_float(double value);

}  // namespace sd::segment
