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

// The image with the HxW mask blended in `colour` at half strength, outlined in `colour`.
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
// An RGB (HxWx3) or grey (HxW) image as PNG bytes (sd::Error naming `what` otherwise).
std::string png_bytes(const at::Tensor& image, const std::string& what);
// Writes an RGB or grey PNG atomically (sd::Error naming the file).
void write_png(const std::string& path, const at::Tensor& image);

// A folder of samdistill's pictures is owned as a run folder is: before pictures are written
// into `dir`, a new or empty folder is marked as ours (samdistill-pictures.txt), the pictures
// (*.png) of an earlier call in a marked folder are removed, and a folder holding anything
// else is an sd::Error naming `flag` and a file found: the user's files are never removed.
void prepare_pictures_folder(const std::string& dir, const std::string& flag);

// [image + prompt | ground truth | teacher's mask | student's mask], each `side` pixels on its
// longest side, under a band with `caption` (see caption.h); without the ground truth panel
// when `truth` is undefined. Masks, outlines and prompts are drawn at the panels' size.
at::Tensor comparison(const at::Tensor& rgb, const models::Prompts& prompt, const at::Tensor& truth,
                      const at::Tensor& teacher_mask, const at::Tensor& student_mask,
                      const std::string& caption, int64_t side = 384);

}  // namespace sd::eval
