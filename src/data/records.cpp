#include "data/records.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "data/image.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/regular_file.h"

namespace sd::data {
namespace {

using nlohmann::json;

const json& field(const json& j, const char* key, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": expected an object holding '" + key + "'");
  auto it = j.find(key);
  if (it == j.end()) throw Error(where + ": missing field '" + key + "'");
  return *it;
}

// Whether `v` is a whole number that T holds (1e42 or 2.5 as an id would otherwise convert
// with undefined behaviour, or wrap).
template <typename T>
bool fits(const json& v) {
  using limits = std::numeric_limits<T>;
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= uint64_t(limits::max());
  if (v.is_number_integer())
    return v.get<int64_t>() >= int64_t(limits::min()) && v.get<int64_t>() <= int64_t(limits::max());
  const double d = v.get<double>();
  return d == std::trunc(d) && d >= double(limits::min()) && d < -double(limits::min());
}

// A number field as T; an integral T takes only whole numbers in its range.
template <typename T>
T number(const json& j, const char* key, const std::string& where) {
  const json& v = field(j, key, where);
  if (!v.is_number()) throw Error(where + ": field '" + key + "' is not a number");
  if constexpr (std::is_integral_v<T>) {
    if (!fits<T>(v))
      throw Error(where + ": field '" + key + "' = " + v.dump() +
                  " is not a whole number in range");
    if (v.is_number_float()) return static_cast<T>(v.get<double>());
  }
  return v.get<T>();
}

template <typename T>
T number_or(const json& j, const char* key, T fallback, const std::string& where) {
  return j.contains(key) ? number<T>(j, key, where) : fallback;
}

// COCO's areas are fractional; SA-1B's whole. Truncated, as before, when in range.
int64_t area_of(double area, const std::string& where) {
  if (!(area >= 0 && area < 9.2e18))
    throw Error(where + ": field 'area' = " + std::to_string(area) + " is out of range");
  return static_cast<int64_t>(area);
}

template <size_t N>
std::array<double, N> numbers(const json& v, const std::string& where) {
  if (!v.is_array() || v.size() != N)
    throw Error(where + ": expected " + std::to_string(N) + " numbers");
  std::array<double, N> out{};
  for (size_t i = 0; i < N; ++i) {
    if (!v[i].is_number()) throw Error(where + ": expected " + std::to_string(N) + " numbers");
    out[i] = v[i].get<double>();
  }
  return out;
}

std::string whole(double d) {
  return std::abs(d) < 1e15 ? std::to_string(static_cast<int64_t>(d)) : std::to_string(d);
}

// {"size": [h, w], "counts": "<compressed>" | [n0, n1, ...]}
Rle parse_rle(const json& seg, int height, int width, const std::string& where) {
  const auto size = numbers<2>(field(seg, "size", where), where + ": segmentation.size");
  if (size[0] != height || size[1] != width)
    throw Error(where + ": mask size [" + whole(size[0]) + ", " + whole(size[1]) +
                "] differs from image size [" + std::to_string(height) + ", " +
                std::to_string(width) + "]");
  const json& counts = field(seg, "counts", where);
  if (counts.is_string())
    return rle_from_string(counts.get_ref<const std::string&>(), height, width, where);
  if (!counts.is_array())
    throw Error(where + ": segmentation.counts is neither a string nor a list");
  std::vector<int64_t> list;
  for (const json& c : counts) {
    if (!c.is_number_integer()) throw Error(where + ": segmentation.counts holds a non-integer");
    if (!fits<int64_t>(c))  // 2^64 - 1 would read as -1
      throw Error(where + ": RLE count " + c.dump() + " out of range");
    list.push_back(c.get<int64_t>());
  }
  return rle_from_counts(list, height, width, where);
}

// How far outside an image a coordinate may lie: prompts and polygons beyond it (or not
// finite) are bad annotations, not boxes that score perfectly or outlines that take gigabytes.
double reach_of(int height, int width) { return 2.0 * (double(height) + width); }

void check_coordinates(const double* v, size_t n, int height, int width, const std::string& at,
                       const char* what) {
  const double reach = reach_of(height, width);
  for (size_t i = 0; i < n; ++i)
    if (!(v[i] >= -reach && v[i] <= reach))
      throw Error(at + ": " + what + " coordinate " + format_number(v[i]) +
                  " is not finite or is far outside the image (" + std::to_string(width) + "x" +
                  std::to_string(height) + ")");
}

// bbox and area as given, else the mask's own.
void fill_geometry(Annotation& a, const json& j, const std::string& where) {
  if (j.contains("bbox")) {
    a.bbox = numbers<4>(j["bbox"], where + ": bbox");
    check_coordinates(a.bbox.data(), 4, a.segmentation.height, a.segmentation.width, where, "bbox");
    if (a.bbox[2] < 0 || a.bbox[3] < 0)
      throw Error(where + ": bbox has a negative width or height");
  } else {
    auto b = rle_bbox(a.segmentation);
    a.bbox = {double(b[0]), double(b[1]), double(b[2]), double(b[3])};
  }
  a.area = j.contains("area") ? area_of(number<double>(j, "area", where), where)
                              : rle_area(a.segmentation);
}

ImageInfo parse_image_info(const json& j, const std::string& where) {
  ImageInfo info;
  info.width = number<int>(j, "width", where);
  info.height = number<int>(j, "height", where);
  if (info.width <= 0 || info.height <= 0)
    throw Error(where + ": image size " + std::to_string(info.width) + "x" +
                std::to_string(info.height) + " is empty");
  // Masks are checked and decoded at this size: it is held to the images' pixel limit.
  if (int64_t(info.width) * info.height > max_image_pixels())
    throw Error(where + ": image size " + std::to_string(info.width) + "x" +
                std::to_string(info.height) + " is over the pixel limit of " +
                std::to_string(max_image_pixels()) +
                " (--max-image-pixels, SAMDISTILL_MAX_IMAGE_PIXELS)");
  if (j.contains("file_name") && j["file_name"].is_string()) info.file_name = j["file_name"];
  return info;
}

json parse_json_text(const std::string& text, const std::string& where) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {  // a syntax error, or a number out of range (406)
    throw Error(where + ": invalid JSON (" + e.what() + ")");
  }
}

json parse_json_file(const std::string& path) {
  return parse_json_text(read_regular_file(path), path);
}

// Polygons are traced point by point on a 5x finer grid: vertices far outside the image
// overflow its integers, and an outline many times the image's would take gigabytes.
void check_polygon(const std::vector<double>& xy, int height, int width, const std::string& at) {
  const double max_outline = 100.0 * (height + width);
  check_coordinates(xy.data(), xy.size(), height, width, at, "polygon");
  double outline = 0;
  for (size_t i = 2; i < xy.size(); ++i) outline += std::abs(xy[i] - xy[i - 2]);
  if (outline > max_outline) throw Error(at + ": polygon outline far longer than the image's");
}

// A relative path without `..`: image_dir / name names a file under image_dir.
bool stays_inside(const std::string& name) {
  const std::filesystem::path p(name);
  if (p.has_root_path()) return false;
  for (const auto& part : p)
    if (part == "..") return false;
  return true;
}

// Parses one annotation of a COCO file into the record of its image.
void add_coco_annotation(const json& aj, const std::string& at,
                         const std::map<int64_t, size_t>& by_id, const std::set<int64_t>& refused,
                         std::vector<Record>& records) {
  const int64_t image_id = number<int64_t>(aj, "image_id", at);
  if (refused.count(image_id)) return;  // named with its image
  auto it = by_id.find(image_id);
  if (it == by_id.end())
    throw Error(at + ": image_id " + std::to_string(image_id) + " is not in 'images'");
  Record& r = records[it->second];
  const int h = r.image.height, w = r.image.width;
  Annotation a;
  a.id = number_or<int64_t>(aj, "id", 0, at);
  const json& seg = field(aj, "segmentation", at);
  if (seg.is_array()) {  // polygons, one object possibly in several parts
    std::vector<Rle> parts;
    for (const json& polygon : seg) {
      std::vector<double> xy;
      if (!polygon.is_array()) throw Error(at + ": polygon is not a list of numbers");
      for (const json& v : polygon) {
        if (!v.is_number()) throw Error(at + ": polygon is not a list of numbers");
        xy.push_back(v.get<double>());
      }
      if (xy.size() < 6 || xy.size() % 2)
        throw Error(at + ": polygon needs at least 3 (x, y) points");
      check_polygon(xy, h, w, at);
      parts.push_back(rle_from_polygon(xy, h, w));
    }
    a.segmentation = rle_union(parts, h, w);
  } else {
    a.segmentation = parse_rle(seg, h, w, at);
  }
  fill_geometry(a, aj, at);
  r.annotations.push_back(std::move(a));
}

}  // namespace

Record parse_sa1b_record(const json& j, const std::string& where) {
  Record record;
  const json& image = field(j, "image", where);
  record.image = parse_image_info(image, where + ": image");
  record.image.image_id = number_or<int64_t>(image, "image_id", 0, where + ": image");
  const json& annotations = field(j, "annotations", where);
  if (!annotations.is_array()) throw Error(where + ": 'annotations' is not a list");
  for (size_t i = 0; i < annotations.size(); ++i) {
    const json& aj = annotations[i];
    const std::string at = where + ": annotations[" + std::to_string(i) + "]";
    Annotation a;
    a.id = number_or<int64_t>(aj, "id", 0, at);
    a.segmentation =
        parse_rle(field(aj, "segmentation", at), record.image.height, record.image.width, at);
    fill_geometry(a, aj, at);
    a.predicted_iou = number_or<double>(aj, "predicted_iou", 0, at);
    a.stability_score = number_or<double>(aj, "stability_score", 0, at);
    if (aj.contains("point_coords")) {
      const json& points = aj["point_coords"];
      if (!points.is_array()) throw Error(at + ": point_coords is not a list");
      for (const json& p : points) {
        a.point_coords.push_back(numbers<2>(p, at + ": point_coords"));
        check_coordinates(a.point_coords.back().data(), 2, record.image.height, record.image.width,
                          at, "point_coords");
      }
    }
    record.annotations.push_back(std::move(a));
  }
  return record;
}

Record read_sa1b_record(const std::string& json_path, const std::string& image_path) {
  return read_sa1b_text(read_regular_file(json_path), json_path, image_path);
}

Record read_sa1b_text(const std::string& text, const std::string& where,
                      const std::string& image_path) {
  Record record = parse_sa1b_record(parse_json_text(text, where), where);
  record.image_path = image_path;
  return record;
}

std::vector<Record> read_coco_instances(const std::string& json_path, const std::string& image_dir,
                                        const BadAnnotation& bad_annotation) {
  const json j = parse_json_file(json_path);
  const json& images = field(j, "images", json_path);
  const json& annotations = field(j, "annotations", json_path);
  if (!images.is_array() || !annotations.is_array())
    throw Error(json_path + ": 'images' and 'annotations' must be lists");
  std::vector<Record> records;
  std::map<int64_t, size_t> by_id;  // image id -> its record
  std::set<int64_t> refused;        // ids of images left out: their annotations go with them
  auto bad = [&](const Error& e) {
    if (!bad_annotation) throw e;
    bad_annotation(e.what());
  };
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string at = json_path + ": images[" + std::to_string(i) + "]";
    std::optional<int64_t> id;
    try {
      id = number<int64_t>(images[i], "id", at);
      if (by_id.count(*id) || refused.count(*id))
        throw Error(at + ": image id " + std::to_string(*id) + " is given to another image " +
                    "too: every image of that id is left out (its annotations would go to " +
                    "either)");
      Record r;
      r.image = parse_image_info(images[i], at);
      r.image.image_id = *id;
      if (r.image.file_name.empty()) throw Error(at + ": missing field 'file_name'");
      if (!stays_inside(r.image.file_name))
        throw Error(at + ": file_name '" + r.image.file_name + "' leaves the image folder");
      r.image_path = (std::filesystem::path(image_dir) / r.image.file_name).string();
      by_id[*id] = records.size();
      records.push_back(std::move(r));
    } catch (const Error& e) {
      if (id) refused.insert(*id);
      bad(e);
    }
  }
  for (size_t i = 0; i < annotations.size(); ++i) {
    const std::string at = json_path + ": annotations[" + std::to_string(i) + "]";
    try {
      add_coco_annotation(annotations[i], at, by_id, refused, records);
    } catch (const Error& e) {
      bad(e);
    }
  }
  records.erase(std::remove_if(records.begin(), records.end(),
                               [&](const Record& r) { return refused.count(r.image.image_id); }),
                records.end());
  return records;
}

}  // namespace sd::data
