#pragma once
#include <ATen/core/Tensor.h>

#include <array>
#include <optional>
#include <vector>

#include "data/rle.h"
#include "models/predictor.h"
#include "segment/amg_config.h"
#include "segment/mask_ops.h"

namespace sd::segment {

// One mask of the automatic mask generator, as SAM's generate() returns it.
struct MaskRecord {
  data::Rle rle;  // at the image's size
  Box box;        // XYXY, the last row / column inside the mask
  float predicted_iou = 0;
  std::array<double, 2> point{};  // the point prompt, image pixels
  float stability_score = 0;
  Box crop_box{};  // XYXY of the crop it came from
};

// How upscale_masks filters: stability_score_thresh > 0 drops masks less stable, and masks
// near an edge of `crop_box` (XYXY in `orig_box`, the image) that is not the image's.
struct MaskFilter {
  double stability_score_offset = 1.0;
  double stability_score_thresh = 0;
  Box crop_box{}, orig_box{};
};

// Rows `indices` of BxHxW low-res logits of the crop (image) whose image is set, upscaled
// (postprocess_masks) a few at a time and made into records (RLE at orig_box's size, box in
// crop coordinates, stability score), nothing for those the filter drops.
std::vector<std::optional<MaskRecord>> upscale_masks(models::Sam& sam, const at::Tensor& low_res,
                                                     const std::vector<int64_t>& indices,
                                                     models::Size2 input_size,
                                                     models::Size2 crop_size,
                                                     const MaskFilter& filter);

// SAM's SamAutomaticMaskGenerator: a grid of point prompts over the image (and over crops of
// it), masks filtered by predicted IoU, stability score and distance to crop edges,
// de-duplicated by box NMS within and between crops, optionally cleaned of small regions.
// The output is the reference's; it only skips work whose result is thrown away (masks
// below the predicted-IoU threshold are never upscaled, stability is counted without
// materialising the thresholded masks).
class AutomaticMaskGenerator {
 public:
  AutomaticMaskGenerator(models::Sam model, AmgConfig config);

  // uint8 HxWx3 RGB -> the masks, in SAM's order.
  std::vector<MaskRecord> generate(const at::Tensor& rgb);
  // The same from a precomputed 1x256x64x64 embedding of an image of `original_size` (a
  // stored teacher embedding): the whole-image layer only, so crop_n_layers must be 0.
  std::vector<MaskRecord> generate(const at::Tensor& embedding, models::Size2 original_size);

  const AmgConfig& config() const { return config_; }
  models::SamPredictor& predictor() { return predictor_; }

 private:
  // The masks of the crop whose image is set on the predictor, after the crop's NMS, in
  // image coordinates.
  std::vector<MaskRecord> process_crop(const Box& crop_box, int layer, models::Size2 orig_size);
  void process_batch(const std::vector<std::array<double, 2>>& points, const Box& crop_box,
                     models::Size2 orig_size, std::vector<MaskRecord>& out);
  // NMS between crops and the small-region clean-up.
  std::vector<MaskRecord> finish(std::vector<MaskRecord> masks, size_t n_crops) const;

  models::SamPredictor predictor_;
  AmgConfig config_;
  std::vector<PointGrid> point_grids_;
};

// postprocess_small_regions: holes and islands under `min_area` removed, changed masks ranked
// after unchanged ones in a box NMS at `nms_thresh`.
std::vector<MaskRecord> postprocess_small_regions(std::vector<MaskRecord> masks, int min_area,
                                                  double nms_thresh);

// The records at `keep`, in that order.
std::vector<MaskRecord> select(const std::vector<MaskRecord>& masks,
                               const std::vector<int64_t>& keep);

}  // namespace sd::segment
