#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "data/rle.h"

// The pieces of SAM's utils/amg.py that the automatic mask generator is made of.
namespace sd::segment {

// XYXY in pixels; SAM's mask boxes hold the last row / column inside the mask.
using Box = std::array<int64_t, 4>;

// torchvision's nms (CPU kernel, float32 areas and IoUs, ties kept in input order): the
// indices kept, highest score first; a box goes when its IoU with a kept one exceeds `thresh`.
std::vector<int64_t> box_nms(const std::vector<Box>& boxes, const std::vector<float>& scores,
                             double thresh);

// generate_crop_boxes: the whole image, then for each layer i (2^i)^2 overlapping crops,
// each with its layer index.
struct CropBox {
  Box box;  // x0, y0, x1, y1 (exclusive)
  int layer = 0;
};
std::vector<CropBox> generate_crop_boxes(int64_t height, int64_t width, int n_layers,
                                         double overlap_ratio);

// is_box_near_crop_edge: a box (crop coordinates) within 20 pixels of an edge of the crop that
// is not an edge of the image.
bool is_box_near_crop_edge(const Box& box, const Box& crop_box, const Box& orig_box);

// remove_small_regions: holes (mode `holes`) or islands smaller than `area_thresh` pixels
// removed from an HxW 0/1 mask (row-major), 8-connected as OpenCV's connectedComponents;
// when every island is small the largest stays. Returns whether anything changed.
bool remove_small_regions(std::vector<uint8_t>& mask, int height, int width, double area_thresh,
                          bool holes);

// batched_mask_to_box of one HxW 0/1 mask (row-major); [0,0,0,0] when empty.
Box mask_to_box(const uint8_t* mask, int height, int width);

// mask_to_rle_pytorch of an HxW 0/1 row-major mask placed at (x0, y0) in an image of
// image_h x image_w (uncrop_masks' zero padding).
data::Rle mask_to_rle(const uint8_t* mask, int height, int width, int64_t x0, int64_t y0,
                      int image_h, int image_w);

// Intersection over union of two masks of one size, walking their runs; 1 when both are empty.
double rle_iou(const data::Rle& a, const data::Rle& b);

}  // namespace sd::segment
