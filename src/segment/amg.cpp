#include "segment/amg.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <optional>

#include "data/preprocess.h"
#include "util/error.h"

namespace sd::segment {
namespace {

// Masks upscaled at once: bounds the memory of the full-size logits (chunk x H x W floats).
constexpr int64_t kUpscaleChunk = 8;

// The mask of one prompt from its full-size logits (crop coordinates), or nothing when the
// stability score or the crop edge filters it out.
std::optional<MaskRecord> mask_from_logits(const float* logits, int height, int width,
                                           const MaskFilter& f) {
  // calculate_stability_score: the thresholded masks are nested, their areas' ratio is the IoU.
  const float threshold = float(models::SamImpl::mask_threshold);
  const float high = float(models::SamImpl::mask_threshold + f.stability_score_offset);
  const float low = float(models::SamImpl::mask_threshold - f.stability_score_offset);
  const int64_t n = int64_t(height) * width;
  int64_t intersection = 0, union_ = 0;
  for (int64_t i = 0; i < n; ++i) {
    intersection += logits[i] > high;
    union_ += logits[i] > low;
  }
  const float stability = float(intersection) / float(union_);
  if (f.stability_score_thresh > 0 && !(stability >= float(f.stability_score_thresh)))
    return std::nullopt;
  std::vector<uint8_t> mask(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) mask[size_t(i)] = logits[i] > threshold;
  MaskRecord r;
  r.box = mask_to_box(mask.data(), height, width);
  if (is_box_near_crop_edge(r.box, f.crop_box, f.orig_box)) return std::nullopt;
  r.stability_score = stability;
  r.crop_box = f.crop_box;
  r.rle = mask_to_rle(mask.data(), height, width, f.crop_box[0], f.crop_box[1], int(f.orig_box[3]),
                      int(f.orig_box[2]));
  return r;
}

}  // namespace

AutomaticMaskGenerator::AutomaticMaskGenerator(models::Sam model, AmgConfig config)
    : predictor_(std::move(model)),
      config_(std::move(config)),
      point_grids_(point_grids_of(config_)) {
  if (point_grids_.size() < size_t(config_.crop_n_layers) + 1)
    throw Error("automatic mask generator: " + std::to_string(point_grids_.size()) +
                " point grids for " + std::to_string(config_.crop_n_layers + 1) + " crop layers");
}

std::vector<MaskRecord> AutomaticMaskGenerator::generate(const at::Tensor& rgb) {
  at::NoGradGuard no_grad;
  const models::Size2 orig{rgb.size(0), rgb.size(1)};
  const std::vector<CropBox> crops =
      generate_crop_boxes(orig[0], orig[1], config_.crop_n_layers, config_.crop_overlap_ratio);
  std::vector<MaskRecord> all;
  for (const CropBox& crop : crops) {
    const auto [x0, y0, x1, y1] = crop.box;
    const at::Tensor cropped = rgb.slice(0, y0, y1).slice(1, x0, x1).contiguous();
    predictor_.set_image(data::resize_longest_side(cropped, predictor_.transform().target_length()),
                         {y1 - y0, x1 - x0});
    std::vector<MaskRecord> masks = process_crop(crop.box, crop.layer, orig);
    all.insert(all.end(), std::make_move_iterator(masks.begin()),
               std::make_move_iterator(masks.end()));
  }
  return finish(std::move(all), crops.size());
}

std::vector<MaskRecord> AutomaticMaskGenerator::generate(const at::Tensor& embedding,
                                                         models::Size2 original_size) {
  if (config_.crop_n_layers != 0)
    throw Error(
        "automatic masks from an image embedding: crop_n_layers must be 0 (crops need "
        "the image), got " +
        std::to_string(config_.crop_n_layers));
  at::NoGradGuard no_grad;
  predictor_.set_image_embedding(embedding, original_size);
  return finish(process_crop({0, 0, original_size[1], original_size[0]}, 0, original_size), 1);
}

std::vector<MaskRecord> AutomaticMaskGenerator::process_crop(const Box& crop_box, int layer,
                                                             models::Size2 orig_size) {
  const double crop_w = double(crop_box[2] - crop_box[0]),
               crop_h = double(crop_box[3] - crop_box[1]);
  std::vector<std::array<double, 2>> points;
  for (const auto& [x, y] : point_grids_[size_t(layer)]) points.push_back({x * crop_w, y * crop_h});
  std::vector<MaskRecord> masks;
  const size_t batch = size_t(config_.points_per_batch);
  for (size_t first = 0; first < points.size(); first += batch) {
    const std::vector<std::array<double, 2>> part(
        points.begin() + long(first),
        points.begin() + long(std::min(points.size(), first + batch)));
    process_batch(part, crop_box, orig_size, masks);
  }
  std::vector<Box> boxes;
  std::vector<float> scores;
  for (const MaskRecord& m : masks) {
    boxes.push_back(m.box);
    scores.push_back(m.predicted_iou);
  }
  masks = select(masks, box_nms(boxes, scores, config_.box_nms_thresh));
  for (MaskRecord& m : masks) {  // back to the image's frame
    for (int k = 0; k < 4; ++k) m.box[size_t(k)] += crop_box[size_t(k % 2)];
    m.point = {m.point[0] + double(crop_box[0]), m.point[1] + double(crop_box[1])};
    m.crop_box = crop_box;
  }
  return masks;
}

void AutomaticMaskGenerator::process_batch(const std::vector<std::array<double, 2>>& points,
                                           const Box& crop_box, models::Size2 orig_size,
                                           std::vector<MaskRecord>& out) {
  models::Sam& sam = predictor_.model();
  const models::Size2 crop = predictor_.original_size(), input = predictor_.input_size();
  // transform.apply_coords on numpy's float64 points; the prompt encoder turns them to fp32
  // after normalising, as the reference does.
  const int64_t n = int64_t(points.size());
  at::Tensor coords = at::empty({n, 1, 2}, at::kDouble);
  for (int64_t i = 0; i < n; ++i) {
    coords[i][0][0] = points[size_t(i)][0] * (double(input[1]) / double(crop[1]));
    coords[i][0][1] = points[size_t(i)][1] * (double(input[0]) / double(crop[0]));
  }
  models::Prompts prompts;
  prompts.point_coords = coords.to(sam->device());
  prompts.point_labels = at::ones({n, 1}, at::TensorOptions(at::kInt).device(sam->device()));
  models::DecoderOutput decoded = predictor_.decode(prompts, /*multimask_output=*/true);
  const int64_t per_point = decoded.masks.size(1);
  const at::Tensor low_res = decoded.masks.flatten(0, 1);
  const at::Tensor iou = decoded.iou_predictions.flatten(0, 1).to(at::kFloat).cpu().contiguous();
  const float* iou_data = iou.data_ptr<float>();

  std::vector<int64_t> kept;  // filtered by predicted IoU before anything is upscaled
  for (int64_t i = 0; i < iou.numel(); ++i)
    if (!(config_.pred_iou_thresh > 0) || iou_data[i] > float(config_.pred_iou_thresh))
      kept.push_back(i);

  const MaskFilter filter{config_.stability_score_offset,
                          config_.stability_score_thresh,
                          crop_box,
                          {0, 0, orig_size[1], orig_size[0]}};
  std::vector<std::optional<MaskRecord>> made =
      upscale_masks(sam, low_res, kept, predictor_.input_size(), crop, filter);
  for (size_t k = 0; k < kept.size(); ++k) {
    if (!made[k]) continue;
    made[k]->predicted_iou = iou_data[kept[k]];
    made[k]->point = points[size_t(kept[k] / per_point)];
    out.push_back(std::move(*made[k]));
  }
}

std::vector<std::optional<MaskRecord>> upscale_masks(models::Sam& sam, const at::Tensor& low_res,
                                                     const std::vector<int64_t>& indices,
                                                     models::Size2 input_size,
                                                     models::Size2 crop_size,
                                                     const MaskFilter& filter) {
  std::vector<std::optional<MaskRecord>> made(indices.size());
  const int height = int(crop_size[0]), width = int(crop_size[1]);
  for (size_t first = 0; first < indices.size(); first += kUpscaleChunk) {
    const size_t count = std::min(indices.size() - first, size_t(kUpscaleChunk));
    const std::vector<int64_t> chunk(indices.begin() + long(first),
                                     indices.begin() + long(first + count));
    const at::Tensor index = at::tensor(chunk, at::kLong).to(low_res.device());
    const at::Tensor logits =
        sam->postprocess_masks(low_res.index_select(0, index).unsqueeze(1), input_size, crop_size)
            .to(at::kCPU, at::kFloat)
            .contiguous();
    const float* data = logits.data_ptr<float>();
    at::parallel_for(0, int64_t(count), 1, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k)
        made[first + size_t(k)] =
            mask_from_logits(data + k * height * width, height, width, filter);
    });
  }
  return made;
}

std::vector<MaskRecord> AutomaticMaskGenerator::finish(std::vector<MaskRecord> masks,
                                                       size_t n_crops) const {
  if (n_crops > 1) {  // duplicates between crops: the smaller crop's mask wins
    std::vector<Box> boxes;
    std::vector<float> scores;
    for (const MaskRecord& m : masks) {
      boxes.push_back(m.box);
      const Box& c = m.crop_box;
      scores.push_back(1.0f / float((c[2] - c[0]) * (c[3] - c[1])));
    }
    masks = select(masks, box_nms(boxes, scores, config_.crop_nms_thresh));
  }
  if (config_.min_mask_region_area > 0)
    masks = postprocess_small_regions(std::move(masks), config_.min_mask_region_area,
                                      std::max(config_.box_nms_thresh, config_.crop_nms_thresh));
  return masks;
}

std::vector<MaskRecord> postprocess_small_regions(std::vector<MaskRecord> masks, int min_area,
                                                  double nms_thresh) {
  if (masks.empty()) return masks;
  std::vector<std::vector<uint8_t>> cleaned(masks.size());
  std::vector<Box> boxes(masks.size());
  std::vector<float> scores(masks.size());
  at::parallel_for(0, int64_t(masks.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const data::Rle& rle = masks[size_t(i)].rle;
      const at::Tensor decoded = data::rle_decode(rle);
      std::vector<uint8_t>& mask = cleaned[size_t(i)];
      mask.assign(decoded.data_ptr<uint8_t>(), decoded.data_ptr<uint8_t>() + decoded.numel());
      const bool holes = remove_small_regions(mask, rle.height, rle.width, min_area, true);
      const bool islands = remove_small_regions(mask, rle.height, rle.width, min_area, false);
      scores[size_t(i)] = float(!holes && !islands);
      boxes[size_t(i)] = mask_to_box(mask.data(), rle.height, rle.width);
    }
  });
  const std::vector<int64_t> keep = box_nms(boxes, scores, nms_thresh);
  for (int64_t i : keep) {  // only the changed masks get a new RLE and box
    if (scores[size_t(i)] != 0.0f) continue;
    MaskRecord& m = masks[size_t(i)];
    m.rle = mask_to_rle(cleaned[size_t(i)].data(), m.rle.height, m.rle.width, 0, 0, m.rle.height,
                        m.rle.width);
    m.box = boxes[size_t(i)];
  }
  return select(masks, keep);
}

std::vector<MaskRecord> select(const std::vector<MaskRecord>& masks,
                               const std::vector<int64_t>& keep) {
  std::vector<MaskRecord> out;
  out.reserve(keep.size());
  for (int64_t i : keep) out.push_back(masks[size_t(i)]);
  return out;
}

}  // namespace sd::segment
