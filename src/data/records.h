#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "data/rle.h"

// SA-1B records: one sa_<id>.json per image,
//   {"image": {"image_id", "width", "height", "file_name"},
//    "annotations": [{"id", "segmentation": {"size": [h, w], "counts": "<RLE>"}, "bbox": [x, y, w,
//    h],
//                     "area", "predicted_iou", "stability_score", "crop_box", "point_coords": [[x,
//                     y]]}]}
// and COCO instance files (one JSON for many images, polygons or RLE) read into the same shape.
namespace sd::data {

struct ImageInfo {
  int64_t image_id = 0;
  int width = 0;
  int height = 0;
  std::string file_name;
};

struct Annotation {
  int64_t id = 0;
  Rle segmentation;
  std::array<double, 4> bbox{};  // XYWH, original pixels
  int64_t area = 0;
  double predicted_iou = 0;
  double stability_score = 0;
  std::vector<std::array<double, 2>> point_coords;  // (x, y), original pixels
};

struct Record {
  ImageInfo image;
  std::string image_path;  // the image file on disk
  std::vector<Annotation> annotations;
};

// Parses one SA-1B JSON; `where` (the file) starts every error message. Required: image.{width,
// height}, annotations[].segmentation.{size, counts} (a compressed string or a list of counts)
// with size == [height, width] and counts adding up to height x width. bbox and area default to
// the mask's own; the other fields default to 0 / empty.
Record parse_sa1b_record(const nlohmann::json& j, const std::string& where);
// Reads and parses sa_<id>.json; image_path = `image_path`.
Record read_sa1b_record(const std::string& json_path, const std::string& image_path);
// The same from the JSON's text (e.g. a member of a tar); `where` names it in errors.
Record read_sa1b_text(const std::string& text, const std::string& where,
                      const std::string& image_path);

// A COCO instance file ({"images": [...], "annotations": [...]}, segmentation as polygons or
// RLE, iscrowd ignored): one record per image, in the file's image order, image_path =
// `image_dir` / file_name. A bad annotation (a bad polygon or RLE, an unknown image_id) is
// an sd::Error naming the file and the annotation; given `bad_annotation`, that is called
// with the message instead and the annotation left out.
using BadAnnotation = std::function<void(const std::string& message)>;
std::vector<Record> read_coco_instances(const std::string& json_path, const std::string& image_dir,
                                        const BadAnnotation& bad_annotation = {});

}  // namespace sd::data
