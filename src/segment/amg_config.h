#pragma once
#include <string>
#include <vector>

#include "io/config_table.h"

namespace sd::segment {

// SamAutomaticMaskGenerator's parameters, with its names and defaults (config keys and
// `segment` flags: points_per_side -> --points-per-side).
struct AmgConfig {
  int points_per_side = 32;  // 0 with point_grids
  int points_per_batch = 64;
  double pred_iou_thresh = 0.88;
  double stability_score_thresh = 0.95;
  double stability_score_offset = 1.0;
  double box_nms_thresh = 0.7;
  int crop_n_layers = 0;
  double crop_nms_thresh = 0.7;
  double crop_overlap_ratio = 512.0 / 1500.0;
  int crop_n_points_downscale_factor = 1;
  std::string point_grids;  // a JSON file of explicit grids, in place of points_per_side
  int min_mask_region_area = 0;
};

const io::ConfigTable<AmgConfig>& amg_config_table();

// Points normalised to [0, 1], (x, y) each.
using PointGrid = std::vector<std::array<double, 2>>;

// build_point_grid: n x n points evenly spaced in [0,1]^2, x varying fastest (numpy's linspace).
PointGrid build_point_grid(int n_per_side);
// build_all_layer_point_grids: layer i has int(n_per_side / scale_per_layer^i) points a side.
std::vector<PointGrid> build_all_layer_point_grids(int n_per_side, int n_layers,
                                                   int scale_per_layer);
// The grids of a config: from points_per_side, or read from point_grids (a JSON list of
// grids, each a list of [x, y] in [0, 1]; one per crop layer), sd::Error naming the file.
std::vector<PointGrid> point_grids_of(const AmgConfig& config);

}  // namespace sd::segment
