#include "segment/amg_config.h"

#include <cmath>

#include "io/config.h"

namespace sd::segment {

using io::field;

const io::ConfigTable<AmgConfig>& amg_config_table() {
  auto unit = [] {
    return io::Check{[](double v, const AmgConfig&) { return v >= 0 && v <= 1; },
                     "must be in [0, 1]"};
  };
  static const io::ConfigTable<AmgConfig> table({
      field("points_per_side", &AmgConfig::points_per_side, 32, io::non_negative(),
            "points sampled along each side of the image (n x n prompts); 0 with point_grids"),
      field("points_per_batch", &AmgConfig::points_per_batch, 64, io::positive(),
            "point prompts run through the mask decoder together"),
      field("pred_iou_thresh", &AmgConfig::pred_iou_thresh, 0.88, io::any_value(),
            "keep masks whose predicted IoU is above this (0: no filter)"),
      field("stability_score_thresh", &AmgConfig::stability_score_thresh, 0.95, io::any_value(),
            "keep masks whose stability score is at least this (0: no filter)"),
      field("stability_score_offset", &AmgConfig::stability_score_offset, 1.0, io::any_value(),
            "shift of the logit cutoff for the stability score"),
      field("box_nms_thresh", &AmgConfig::box_nms_thresh, 0.7, unit(),
            "box IoU above which NMS drops the lower-scored of two masks of one crop"),
      field("crop_n_layers", &AmgConfig::crop_n_layers, 0, io::non_negative(),
            "crop layers run again on the image (layer i: (2^i)^2 crops)"),
      field("crop_nms_thresh", &AmgConfig::crop_nms_thresh, 0.7, unit(),
            "box IoU above which NMS drops duplicates between crops"),
      field("crop_overlap_ratio", &AmgConfig::crop_overlap_ratio, 512.0 / 1500.0, unit(),
            "overlap of the first layer's crops, as a fraction of the image's shorter side"),
      field("crop_n_points_downscale_factor", &AmgConfig::crop_n_points_downscale_factor, 1,
            io::positive(), "points per side of crop layer i: points_per_side / factor^i"),
      field("point_grids", &AmgConfig::point_grids, std::string(),
            io::Check{[](const std::string& v, const AmgConfig& c) {
                        return v.empty() != (c.points_per_side == 0);
                      },
                      "give exactly one of point_grids and points_per_side (set it to 0)"},
            "JSON file: explicit point grids, one per crop layer, each a list of [x, y] in "
            "[0, 1]"),
      field("min_mask_region_area", &AmgConfig::min_mask_region_area, 0, io::non_negative(),
            "remove islands and fill holes smaller than this many pixels, then NMS again"),
  });
  return table;
}

PointGrid build_point_grid(int n_per_side) {
  // np.linspace(offset, 1 - offset, n): start + i * step, the last point exactly the stop.
  const double offset = 1.0 / (2 * n_per_side), stop = 1 - offset;
  std::vector<double> side(static_cast<size_t>(n_per_side));
  const double step = n_per_side > 1 ? (stop - offset) / (n_per_side - 1) : 0;
  for (int i = 0; i < n_per_side; ++i) side[size_t(i)] = i * step + offset;
  if (n_per_side > 1) side.back() = stop;
  PointGrid grid;
  for (double y : side)
    for (double x : side) grid.push_back({x, y});
  return grid;
}

std::vector<PointGrid> build_all_layer_point_grids(int n_per_side, int n_layers,
                                                   int scale_per_layer) {
  std::vector<PointGrid> grids;
  for (int i = 0; i <= n_layers; ++i)
    grids.push_back(build_point_grid(int(n_per_side / std::pow(double(scale_per_layer), i))));
  return grids;
}

std::vector<PointGrid> point_grids_of(const AmgConfig& config) {
  if (config.point_grids.empty())
    return build_all_layer_point_grids(config.points_per_side, config.crop_n_layers,
                                       config.crop_n_points_downscale_factor);
  const nlohmann::json j = io::read_json_file(config.point_grids);
  const std::string where = "point_grids file '" + config.point_grids + "'";
  if (!j.is_array() || j.size() < size_t(config.crop_n_layers) + 1)
    throw Error(where + ": expected a list of at least crop_n_layers + 1 = " +
                std::to_string(config.crop_n_layers + 1) + " grids");
  std::vector<PointGrid> grids;
  for (const nlohmann::json& g : j) {
    PointGrid grid;
    if (!g.is_array() || g.empty())
      throw Error(where + ": grid " + std::to_string(grids.size()) + " is not a list of points");
    for (const nlohmann::json& p : g) {
      if (!p.is_array() || p.size() != 2 || !p[0].is_number() || !p[1].is_number() ||
          p[0].get<double>() < 0 || p[0].get<double>() > 1 || p[1].get<double>() < 0 ||
          p[1].get<double>() > 1)
        throw Error(where + ": grid " + std::to_string(grids.size()) + " holds " + p.dump() +
                    ", not [x, y] in [0, 1]");
      grid.push_back({p[0].get<double>(), p[1].get<double>()});
    }
    grids.push_back(std::move(grid));
  }
  return grids;
}

}  // namespace sd::segment
