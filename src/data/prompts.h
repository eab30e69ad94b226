#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "data/records.h"
#include "models/transforms.h"

// Prompts made from an SA-1B annotation, for fine-tuning and evaluation.
namespace sd::data {

enum class PromptKind {
  box,           // the annotation's bbox, XYWH -> XYXY
  point_coords,  // its first point_coords entry
  centre,        // the mask pixel farthest from the mask's boundary
  random_point,  // a mask pixel drawn from (seed, annotation id)
};

// The prompt in original pixels: a box as 4 floats (x0, y0, x1, y1) or a point as 1x2 (x, y).
// Pixel (col, row) of the mask is the point (col + 0.5, row + 0.5), as in SA-1B's
// point_coords. sd::Error when the mask is empty or point_coords is absent.
at::Tensor annotation_prompt(const Annotation& annotation, PromptKind kind, uint64_t seed = 0);

// The same, moved into the frame of the image resized by ResizeLongestSide(1024), exactly as
// SAM's predictor does (apply_boxes / apply_coords).
at::Tensor annotation_prompt_1024(const Annotation& annotation, PromptKind kind,
                                  models::Size2 original_size, uint64_t seed = 0);

// (row, col) of the pixel of a 0/1 HxW uint8 mask farthest (Euclidean) from any pixel outside
// the mask, the image border counting as outside; ties go to the first in row-major order.
std::array<int64_t, 2> mask_centre(const at::Tensor& mask);

}  // namespace sd::data
