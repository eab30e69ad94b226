#include "eval/run.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>

#include "data/image.h"
#include "data/loader.h"
#include "data/preprocess.h"
#include "distill/export.h"
#include "distill/run_folder.h"
#include "eval/picture.h"
#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "models/preprocess.h"
#include "store/embed.h"
#include "store/reader.h"
#include "util/error.h"
#include "util/log.h"
#include "util/progress.h"

namespace sd::eval {
namespace {

using Clock = std::chrono::steady_clock;

bool has_decoder(const io::StateDict& entries) {
  for (const auto& [key, tensor] : entries)
    if (key.rfind("mask_decoder.", 0) == 0) return true;
  return false;
}

// The teacher's 1x256x64x64 embedding of an image: read from the store, or computed.
using TeacherEmbedding = std::function<at::Tensor(const std::string& id, const at::Tensor& resized)>;

TeacherEmbedding from_store(std::shared_ptr<store::Reader> reader, const EvalRequest& r) {
  const std::string checkpoint =
      r.teacher_checkpoint.empty() ? "" : distill::resolve_weights(r.teacher_checkpoint);
  store::check_made_by(reader->manifest(), r.teacher, checkpoint, r.store);
  return [reader](const std::string& id, const at::Tensor&) {
    return reader->embedding(id).unsqueeze(0);
  };
}

TeacherEmbedding from_model(const EvalRequest& r, at::Device device) {
  if (r.teacher_checkpoint.empty())
    throw Error("eval: give --store (teacher embeddings) or --teacher-checkpoint (teacher weights)");
  models::EncoderConfig config = models::resolve_encoder(r.teacher.empty() ? "vit_h" : r.teacher);
  std::shared_ptr<models::ImageEncoder> encoder =
      store::load_image_encoder(config, distill::resolve_weights(r.teacher_checkpoint));
  encoder->to(device);
  encoder->eval();
  return [encoder, device](const std::string&, const at::Tensor& resized) {
    at::NoGradGuard no_grad;
    return encoder->forward(models::normalize_and_pad(resized).to(device));
  };
}

// One comparison picture per prompt, named <image>_<annotation>_<kind>_iou<IoU>.png.
void write_pictures(const std::string& dir, const at::Tensor& rgb,
                    const std::vector<PromptMasks>& masks, const PromptOutcome* outcomes) {
  std::filesystem::create_directories(dir);
  for (size_t i = 0; i < masks.size(); ++i) {
    const PromptOutcome& o = outcomes[i];
    char iou[16];
    std::snprintf(iou, sizeof iou, "%.3f", o.iou);
    write_png(dir + "/" + o.image + "_" + std::to_string(o.annotation) + "_" + o.kind + "_iou" + iou + ".png",
              comparison(rgb, masks[i].prompt, masks[i].teacher, masks[i].student));
  }
}

}  // namespace

models::Sam load_student_sam(const EvalRequest& r) {
  models::EncoderConfig config = distill::student_config_of(r.student, r.student_model);
  models::Sam sam = models::build_sam(config);
  io::load_state_dict(*sam->image_encoder, distill::read_encoder_weights(r.student), "", r.student);
  std::string source = r.teacher_checkpoint.empty() ? distill::resolve_weights(r.student)
                                                    : distill::resolve_weights(r.teacher_checkpoint);
  io::StateDict full = io::read_state_dict(source);
  if (!has_decoder(full))
    throw Error("eval: '" + source + "' holds no prompt encoder and mask decoder; give " +
                "--teacher-checkpoint, a full SAM checkpoint of the teacher");
  io::load_state_dict(*sam->prompt_encoder, full, "prompt_encoder.", source);
  io::load_state_dict(*sam->mask_decoder, full, "mask_decoder.", source);
  return sam;
}

EvalReport run_eval(const EvalRequest& r) {
  const auto began = Clock::now();
  const at::Device device(r.device);
  std::shared_ptr<store::Reader> reader;
  if (!r.store.empty()) reader = std::make_shared<store::Reader>(r.store);
  TeacherEmbedding teacher = reader ? from_store(reader, r) : from_model(r, device);
  models::Sam sam = load_student_sam(r);
  sam->to(device);
  Evaluator evaluator(sam, r.settings);

  std::vector<data::Skip> orphans;
  data::Dataset dataset = data::Dataset::index_sa1b(r.data, &orphans).subset(r.subset);
  for (const data::Skip& s : orphans) log::warn("eval: " + s.file + ": " + s.reason);
  const size_t n = r.max_images > 0 ? std::min<size_t>(r.max_images, dataset.size()) : dataset.size();
  if (n == 0) throw Error("eval: no SA-1B images (sa_N.jpg with sa_N.json) selected under --data");

  const data::ImageDecoder decoder = data::default_image_decoder();
  EvalReport report = evaluator.empty_report();
  Progress progress("eval", int64_t(n));
  for (size_t i = 0; i < n; ++i) {
    const data::Entry& entry = dataset[i];
    const data::Record record = data::load_record(entry);
    const bool cached = reader && reader->find(store::Kind::image, entry.id);
    const at::Tensor resized = cached ? reader->image(entry.id)
                                      : data::resize_longest_side(data::read_image(entry, decoder, &record));
    auto start = Clock::now();
    const at::Tensor embedding = teacher(entry.id, resized);
    report.timings.teacher_embed_s += std::chrono::duration<double>(Clock::now() - start).count();
    const bool pictures = !r.vis_dir.empty() && int(i) < r.vis_images;
    std::vector<PromptMasks> masks;
    const size_t first = report.outcomes.size();
    evaluator.evaluate_image(entry.id, record, resized, embedding, report, pictures ? &masks : nullptr);
    if (pictures)
      write_pictures(r.vis_dir, data::read_image(entry, decoder, &record), masks, &report.outcomes[first]);
    progress.update(int64_t(i + 1), std::to_string(report.outcomes.size()) + " prompts");
  }
  progress.finish(std::to_string(report.outcomes.size()) + " prompts");
  report.timings.total_s = std::chrono::duration<double>(Clock::now() - began).count();
  return report;
}

}  // namespace sd::eval
