#include "segment/box_prompts.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/config.h"
#include "util/error.h"

namespace sd::segment {
namespace {

Detection parse_detection(const nlohmann::json& j, const std::string& where) {
  auto number = [&](const nlohmann::json& v, const std::string& key) {
    if (!v.is_number()) throw Error(where + ": '" + key + "' must be a number, got " + v.dump());
    return v.get<double>();
  };
  Detection d;
  if (j.contains("bbox")) {
    const nlohmann::json& b = j["bbox"];
    if (!b.is_array() || b.size() != 4)
      throw Error(where + ": 'bbox' must be [x, y, width, height], got " + b.dump());
    for (size_t k = 0; k < 4; ++k) d.bbox[k] = number(b[k], "bbox");
    if (d.bbox[2] < 0 || d.bbox[3] < 0)
      throw Error(where + ": 'bbox' " + b.dump() + " has a negative width or height");
    d.has_box = true;
  }
  if (j.contains("point_coords")) {
    const nlohmann::json& p = j["point_coords"];
    if (!p.is_array()) throw Error(where + ": 'point_coords' must be a list of [x, y]");
    for (const nlohmann::json& xy : p) {
      if (!xy.is_array() || xy.size() != 2)
        throw Error(where + ": 'point_coords' holds " + xy.dump() + ", not [x, y]");
      d.points.push_back({number(xy[0], "point_coords"), number(xy[1], "point_coords")});
      d.labels.push_back(1);
    }
    if (j.contains("point_labels")) {
      const nlohmann::json& l = j["point_labels"];
      if (!l.is_array() || l.size() != d.points.size())
        throw Error(where + ": 'point_labels' must hold one 0 or 1 per point");
      for (size_t k = 0; k < l.size(); ++k) {
        if (!l[k].is_number_integer() || (l[k] != 0 && l[k] != 1))
          throw Error(where + ": 'point_labels' holds " + l[k].dump() + ", not 0 or 1");
        d.labels[k] = l[k].get<int>();
      }
    }
  }
  if (!d.has_box && d.points.empty())
    throw Error(where + ": has neither 'bbox' nor 'point_coords'");
  if (j.contains("score")) {
    d.score = number(j["score"], "score");
    d.has_score = true;
  }
  if (j.contains("category_id")) {
    if (!j["category_id"].is_number_integer())
      throw Error(where + ": 'category_id' must be an integer, got " + j["category_id"].dump());
    d.category_id = j["category_id"].get<int64_t>();
  }
  return d;
}

}  // namespace

PromptFile read_prompt_file(const std::string& path) {
  const nlohmann::json j = io::read_json_file(path);
  if (!j.is_array())
    throw Error("--prompts '" + path + "': expected a list of detections (COCO results form)");
  PromptFile file{path, {}, {}};
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string where = "--prompts '" + path + "' record " + std::to_string(i);
    const nlohmann::json& r = j[i];
    if (!r.is_object()) throw Error(where + ": not an object");
    Detection d = parse_detection(r, where);
    if (r.contains("image_id") && r["image_id"].is_number_integer())
      file.by_image_id[r["image_id"].get<int64_t>()].push_back(std::move(d));
    else if (r.contains("file_name") && r["file_name"].is_string())
      file.by_file_name[r["file_name"].get<std::string>()].push_back(std::move(d));
    else
      throw Error(where + ": needs an integer 'image_id' or a string 'file_name'");
  }
  return file;
}

std::vector<Detection> prompts_for(const PromptFile& file, const data::Entry& entry,
                                   const data::Record& record) {
  std::vector<Detection> out;
  if (record.image.image_id != 0 || !entry.record) {
    if (auto it = file.by_image_id.find(record.image.image_id); it != file.by_image_id.end())
      out = it->second;
  }
  const std::string leaf = std::filesystem::path(entry.image_path).filename().string();
  const std::string ext = std::filesystem::path(leaf).extension().string();
  std::vector<std::string> names{record.image.file_name, leaf, entry.id, entry.id + ext};
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty() ||
        std::find(names.begin(), names.begin() + long(i), names[i]) != names.begin() + long(i))
      continue;
    if (auto it = file.by_file_name.find(names[i]); it != file.by_file_name.end())
      out.insert(out.end(), it->second.begin(), it->second.end());
  }
  return out;
}

namespace {

// Prompts that batch together: the same kinds of token.
std::pair<bool, size_t> shape_of(const Detection& d) { return {d.has_box, d.points.size()}; }

}  // namespace

std::vector<MaskRecord> segment_prompts(models::SamPredictor& predictor,
                                        const std::vector<Detection>& prompts, int batch,
                                        bool multimask, double stability_score_offset) {
  at::NoGradGuard no_grad;
  models::Sam& sam = predictor.model();
  const models::Size2 size = predictor.original_size();
  const Box whole{0, 0, size[1], size[0]};
  const MaskFilter filter{stability_score_offset, 0, whole, whole};
  std::vector<MaskRecord> out(prompts.size());
  std::map<std::pair<bool, size_t>, std::vector<size_t>> groups;
  for (size_t i = 0; i < prompts.size(); ++i) groups[shape_of(prompts[i])].push_back(i);
  for (const auto& [shape, members] : groups)
    for (size_t first = 0; first < members.size(); first += size_t(batch)) {
      const std::vector<size_t> part(
          members.begin() + long(first),
          members.begin() + long(std::min(members.size(), first + size_t(batch))));
      const int64_t n = int64_t(part.size()), n_points = int64_t(shape.second);
      at::Tensor boxes = at::empty({n, 4}, at::kDouble);
      at::Tensor coords = at::empty({n, n_points, 2}, at::kDouble);
      at::Tensor labels = at::empty({n, n_points}, at::kInt);
      for (int64_t b = 0; b < n; ++b) {
        const Detection& d = prompts[part[size_t(b)]];
        const auto& [x, y, w, h] = d.bbox;
        for (int k = 0; k < 4; ++k)
          boxes[b][k] = std::array<double, 4>{x, y, x + w, y + h}[size_t(k)];
        for (int64_t p = 0; p < n_points; ++p) {
          coords[b][p][0] = d.points[size_t(p)][0];
          coords[b][p][1] = d.points[size_t(p)][1];
          labels[b][p] = d.labels[size_t(p)];
        }
      }
      models::Prompts input;  // SamPredictor.predict's frame: resized pixels, float32
      if (shape.first) input.box = predictor.transform().apply_boxes(boxes, size).to(sam->device());
      if (n_points > 0) {
        input.point_coords = predictor.transform().apply_coords(coords, size).to(sam->device());
        input.point_labels = labels.to(sam->device());
      }
      models::DecoderOutput decoded = predictor.decode(input, multimask);
      const at::Tensor iou = decoded.iou_predictions.to(at::kCPU, at::kFloat);
      const at::Tensor best = iou.argmax(1);
      std::vector<int64_t> rows;
      for (int64_t b = 0; b < n; ++b) rows.push_back(b * iou.size(1) + best[b].item<int64_t>());
      std::vector<std::optional<MaskRecord>> made = upscale_masks(
          sam, decoded.masks.flatten(0, 1), rows, predictor.input_size(), size, filter);
      for (int64_t b = 0; b < n; ++b) {
        MaskRecord& m = out[part[size_t(b)]];
        m = std::move(*made[size_t(b)]);
        m.predicted_iou = iou.flatten()[rows[size_t(b)]].item<float>();
        const Detection& d = prompts[part[size_t(b)]];
        if (!d.points.empty()) m.point = d.points[0];
      }
    }
  return out;
}

}  // namespace sd::segment
