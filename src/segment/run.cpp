#include "segment/run.h"

#include <ATen/core/grad_mode.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "data/image_reader.h"
#include "io/config.h"
#include "io/run_folder.h"
#include "models/sam_weights.h"
#include "segment/box_prompts.h"
#include "segment/outputs.h"
#include "util/atomic_file.h"
#include "util/device.h"
#include "util/log.h"
#include "util/png.h"
#include "util/progress.h"
#include "util/stop_signal.h"

namespace sd::segment {
namespace {

namespace fs = std::filesystem;

struct ImagePaths {
  std::string rle, folder, overlay;
};

ImagePaths paths_of(const SegmentRequest& r, const data::Entry& entry) {
  const std::string base = io::in_folder(r.out, entry.id);
  return {base + ".json", base, base + ".overlay.png"};
}

// Every file the request asks of this image is there (each is written atomically, and the
// folder's metadata.csv after its PNGs).
bool done(const SegmentRequest& r, const data::Entry& entry) {
  const ImagePaths p = paths_of(r, entry);
  return (!r.rle || fs::exists(p.rle)) && (!r.png || fs::exists(p.folder + "/metadata.csv")) &&
         (!r.overlay || fs::exists(p.overlay));
}

// COCO results: the COCO file's image id, else the image's own.
nlohmann::json image_id_of(const data::Entry& entry) {
  if (entry.record) return entry.record->image.image_id;
  return entry.id;
}

// The records written for one image: SAM's, plus the detection's category and score.
nlohmann::json image_records(const std::vector<MaskRecord>& masks,
                             const std::vector<Detection>* prompts) {
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < masks.size(); ++i) {
    nlohmann::json j = record_json(masks[i]);
    if (prompts) {
      const Detection& d = (*prompts)[i];
      j["category_id"] = d.category_id;
      if (d.has_score) j["score"] = d.score;
      if (d.has_box) j["bbox_prompt"] = d.bbox;
      j["point_coords"] = d.points;
    }
    out.push_back(std::move(j));
  }
  return out;
}

void write_image(const SegmentRequest& r, const data::Entry& entry, const at::Tensor& rgb,
                 const std::vector<MaskRecord>& masks, const std::vector<Detection>* prompts) {
  const ImagePaths p = paths_of(r, entry);
  fs::create_directories(fs::path(p.rle).parent_path());
  if (r.png) write_mask_folder(p.folder, masks);
  if (r.overlay) {
    const at::Tensor picture = overlay(rgb, masks);
    write_file_atomic(p.overlay, encode_png_rgb(picture.data_ptr<uint8_t>(), int(picture.size(1)),
                                                int(picture.size(0))));
  }
  if (r.rle) write_file_atomic(p.rle, image_records(masks, prompts).dump() + "\n");
}

// coco_results.json from the records of every image of the selection that is done.
std::string write_results(const SegmentRequest& r, const data::Dataset& dataset) {
  nlohmann::json results = nlohmann::json::array();
  for (const data::Entry& entry : dataset.entries()) {
    const std::string path = paths_of(r, entry).rle;
    if (!fs::exists(path)) continue;
    for (const nlohmann::json& m : io::read_json_file(path)) {
      results.push_back({{"image_id", image_id_of(entry)},
                         {"category_id", m.value("category_id", int64_t(1))},
                         {"segmentation", m["segmentation"]},
                         {"bbox", m["bbox"]},
                         {"score", m.value("score", m["predicted_iou"].get<double>())}});
    }
  }
  const std::string path = io::in_folder(r.out, "coco_results.json");
  write_file_atomic(path, results.dump() + "\n");
  return path;
}

}  // namespace

void parse_formats(const std::string& text, SegmentRequest& r) {
  r.png = r.rle = false;
  std::stringstream in(text);
  for (std::string word; std::getline(in, word, ',');) {
    if (word == "png")
      r.png = true;
    else if (word == "rle")
      r.rle = true;
    else
      throw Error("--format '" + text + "': '" + word + "' is not png or rle");
  }
  if (!r.png && !r.rle) throw Error("--format '" + text + "': name png and/or rle");
}

SegmentSummary run_segment(const SegmentRequest& r) {
  const auto began = std::chrono::steady_clock::now();
  if (r.everything == !r.prompts_file.empty())
    throw Error("segment: give exactly one of --everything and --prompts FILE");
  SegmentSummary summary;
  data::Dataset dataset = data::Dataset::open(r.data, r.images, &summary.skipped).subset(r.subset);
  if (r.strict && !summary.skipped.empty()) throw Error(data::describe(summary.skipped.front()));
  for (const data::Skip& s : summary.skipped) log::warn("skipping " + data::describe(s));
  if (r.max_images > 0 && size_t(r.max_images) < dataset.size())
    dataset = dataset.head(size_t(r.max_images));
  if (dataset.size() == 0) throw Error("segment: no images selected from --data");
  std::optional<PromptFile> prompts;
  if (!r.prompts_file.empty()) prompts = read_prompt_file(r.prompts_file);

  const data::Dataset todo = dataset.filter([&](const data::Entry& e) { return !done(r, e); });
  summary.skipped_done = dataset.size() - todo.size();
  if (summary.skipped_done > 0)
    log::info("segment: " + std::to_string(summary.skipped_done) + " of " +
              std::to_string(dataset.size()) + " images already done in " + r.out + ", skipped");
  fs::create_directories(r.out);

  models::Sam sam = models::load_sam(r.student, r.student_model, "--student-model");
  sam->to(resolve_device(r.device));
  AutomaticMaskGenerator generator(sam, r.amg);
  models::AutocastScope autocast(r.amp, sam->device());
  at::NoGradGuard no_grad;

  data::ReadOptions read;  // the next images are decoded while this one is segmented
  read.records = true;
  read.resized = false;
  read.input = false;
  read.original = true;
  read.strict = r.strict;
  data::ImageReader reader(todo, data::decoded_images(data::default_image_decoder()), read);
  catch_stop_signals();
  Progress progress("segment", int64_t(todo.size()));
  for (size_t i = 0; i < todo.size(); ++i) {
    data::ImageItem item = *reader.next();
    if (item.skip) {
      summary.skipped.push_back(std::move(*item.skip));
      continue;
    }
    const at::Tensor& rgb = item.original;
    std::vector<MaskRecord> masks;
    std::vector<Detection> image_prompts;
    if (prompts) {
      image_prompts = prompts_for(*prompts, *item.entry, item.record);
      models::SamPredictor& predictor = generator.predictor();
      predictor.set_image(data::resize_longest_side(rgb), {rgb.size(0), rgb.size(1)});
      masks = segment_prompts(predictor, image_prompts, r.amg.points_per_batch, r.multimask,
                              r.amg.stability_score_offset);
    } else {
      masks = generator.generate(rgb);
    }
    write_image(r, *item.entry, rgb, masks, prompts ? &image_prompts : nullptr);
    ++summary.images;
    summary.masks += masks.size();
    progress.update(int64_t(i + 1), std::to_string(summary.masks) + " masks");
    if (const int signal = stop_signal(); signal != 0 && i + 1 < todo.size()) {
      if (r.rle) write_results(r, dataset);
      throw Stopped(signal, "segment: stopped by " + signal_name(signal) + " after " +
                                std::to_string(summary.images) +
                                " images, their files written in " + r.out +
                                "; run the same command again to continue");
    }
  }
  progress.finish(std::to_string(summary.masks) + " masks");
  if (r.rle) summary.results = write_results(r, dataset);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  return summary;
}

}  // namespace sd::segment
