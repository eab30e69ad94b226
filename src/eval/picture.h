#pragma once
#include <ATen/core/Tensor.h>

#include <array>
#include <string>
#include <vector>

#include "eval/report.h"
#include "models/predictor.h"

// Pictures for people, uint8 HxWx3 RGB throughout, drawn with ATen alone (no OpenCV).
namespace sd::eval {

using Colour = std::array<uint8_t, 3>;

// The image with the HxW mask blended in `colour` at half strength.
at::Tensor tint(const at::Tensor& rgb, const at::Tensor& mask, Colour colour);
// The prompt drawn onto `rgb` (in place, original pixels): the box in yellow, foreground
// points as green and background points as red squares with a white rim.
void draw_prompt(at::Tensor& rgb, const models::Prompts& prompt);
// The image scaled (bilinear) so that its longest side is `side`.
at::Tensor fit_longest_side(const at::Tensor& rgb, int64_t side);
// Panels of equal height next to each other, `gap` white columns between them.
at::Tensor side_by_side(const std::vector<at::Tensor>& panels, int64_t gap = 8);
// The file name of an outcome's picture: <image>_<annotation>_<kind>_iou<IoU>.png, with each
// '/' of the image id (a plain folder's `street/cam1/0001`) as "__": one folder holds them all.
std::string picture_name(const PromptOutcome& outcome);
// An RGB image as PNG bytes (sd::Error naming `what` when it is not HxWx3).
std::string png_bytes(const at::Tensor& rgb, const std::string& what);
// Writes an RGB PNG atomically (sd::Error naming the file).
void write_png(const std::string& path, const at::Tensor& rgb);

// [image + prompt | teacher's mask | student's mask], each `side` pixels on its longest side,
// under a band with `caption` (see caption.h).
at::Tensor comparison(const at::Tensor& rgb, const models::Prompts& prompt,
                      const at::Tensor& teacher_mask, const at::Tensor& student_mask,
                      const std::string& caption, int64_t side = 384);

}  // namespace sd::eval
