#include "eval/run.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>

#include "data/image.h"
#include "data/image_reader.h"
#include "data/loader.h"
#include "data/preprocess.h"
#include "eval/picture.h"
#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "io/weights.h"
#include "models/preprocess.h"
#include "models/sam_weights.h"
#include "store/manifest.h"
#include "store/reader.h"
#include "util/atomic_file.h"
#include "util/clock.h"
#include "util/device.h"
#include "util/error.h"
#include "util/log.h"
#include "util/progress.h"
#include "util/sha256.h"

namespace sd::eval {
namespace {

using Clock = std::chrono::steady_clock;

// Every image evaluated needs its embedding in the store: which are missing, and how to make them.
void check_stored(const store::Reader& reader, const data::Dataset& images) {
  std::vector<std::string> missing;
  for (const data::Entry& e : images.entries())
    if (!reader.find(store::Kind::embedding, e.id)) missing.push_back(e.id);
  if (missing.empty()) return;
  throw Error("store '" + reader.dir() + "' has no embedding for " +
              std::to_string(missing.size()) + " of the " + std::to_string(images.size()) +
              " images selected (the first: '" + missing.front() +
              "'): make them with `samdistill embed` of these images into a store (--teacher, "
              "--teacher-checkpoint, --data, --store), or leave --store out and give "
              "--teacher-checkpoint to run the teacher on them");
}

TeacherEmbedding from_store(std::shared_ptr<store::Reader> reader, const EvalRequest& r,
                            const data::Dataset& images) {
  store::check_made_by(reader->manifest(), r.teacher, r.teacher_checkpoint, r.store);
  check_stored(*reader, images);
  return stored_embeddings(reader);
}

TeacherEmbedding from_model(const EvalRequest& r, at::Device device) {
  if (r.teacher_checkpoint.empty())
    throw Error(
        "eval: give --store (teacher embeddings) or --teacher-checkpoint (teacher weights)");
  const io::Weights weights = io::read_weights(r.teacher_checkpoint);
  std::shared_ptr<models::ImageEncoder> encoder = models::load_image_encoder(
      models::encoder_config_of(weights, r.teacher, "--teacher"), weights);
  encoder->to(device);
  encoder->eval();
  return [encoder, device](const std::string&, const at::Tensor& resized) {
    at::NoGradGuard no_grad;
    return encoder->forward(models::normalize_and_pad(resized).to(device));
  };
}

// One comparison picture per prompt (picture_name), captioned with the kind and the IoU.
std::vector<PictureFile> draw_pictures(const at::Tensor& rgb, const std::vector<PromptMasks>& masks,
                                       const PromptOutcome* outcomes) {
  std::vector<PictureFile> files;
  for (size_t i = 0; i < masks.size(); ++i) {
    const PromptOutcome& o = outcomes[i];
    const bool truth = masks[i].truth.defined();
    char numbers[96];
    if (truth)
      std::snprintf(numbers, sizeof numbers, "IoU %.3f  teacher-GT %.3f  student-GT %.3f", o.iou,
                    o.teacher_gt, o.student_gt);
    else
      std::snprintf(numbers, sizeof numbers, "IoU %.3f", o.iou);
    const std::string panels = truth ? "image+prompt | ground truth | teacher | student"
                                     : "image+prompt | teacher | student";
    const std::string name = picture_name(o);
    files.push_back(
        {name, png_bytes(comparison(rgb, masks[i].prompt, masks[i].truth, masks[i].teacher,
                                    masks[i].student, o.kind + "  " + numbers + "    " + panels),
                         name)});
  }
  return files;
}

void write_pictures(const std::string& dir, const std::vector<PictureFile>& files) {
  std::filesystem::create_directories(dir);
  for (const PictureFile& f : files) write_file_atomic(dir + "/" + f.name, f.png);
}

// An image's pixels from the store's image cache when it holds them, else decoded. A plain
// image is decoded all the same: its original size is known only from its file.
data::ImageSource cached_or_decoded(const store::Reader* cache) {
  return [cache, decoded = data::decoded_images(data::default_image_decoder())](
             const data::Entry& entry, const data::Record* record) {
    const bool sized = record && record->image.width > 0;
    return cache && sized && cache->find(store::Kind::image, entry.id) ? cache->image(entry.id)
                                                                       : decoded(entry, record);
  };
}

// What a launched evaluation's ranks compare (distributed::check_same_run): the request, less the
// folders that may sit elsewhere on each machine (the data's, compared by the ids of the images
// selected, and the store's) and the files rank 0 alone writes.
nlohmann::json shared_request(const EvalRequest& r, const data::Dataset& images) {
  std::string ids;
  for (const data::Entry& e : images.entries()) ids += e.id + "\n";
  nlohmann::json prompts = nlohmann::json::array();
  for (const data::PromptSpec& spec : r.settings.prompts) prompts.push_back(spec.name());
  return {{"teacher", r.teacher},
          {"teacher_checkpoint", r.teacher_checkpoint},
          {"student", r.student},
          {"student_model", r.student_model},
          {"student_decoder", word(r.student_decoder)},
          {"images", sha256_hex(ids.data(), ids.size())},
          {"prompts", prompts},
          {"multimask", word(r.settings.multimask)},
          {"max_prompts_per_image", r.settings.max_prompts_per_image},
          {"seed", r.settings.seed},
          {"amp", word(r.settings.amp)},
          {"device", word(r.device)},
          {"vis_images", r.vis_dir.empty() ? 0 : r.vis_images},
          {"strict", r.strict}};
}

// Under a launcher: the ranks' reports of their shares as one report on rank 0; each other
// rank keeps its own.
EvalReport gather_on_rank0(distributed::Group& group, EvalReport mine,
                           const data::Dataset& images) {
  const std::vector<std::string> parts =
      distributed::gather_to_rank0(group, "eval report", report_state(mine).dump());
  if (parts.empty()) return mine;
  std::vector<EvalReport> slices;
  for (const std::string& part : parts)
    slices.push_back(report_from_state(nlohmann::json::parse(part)));
  return merge_interleaved(slices, images);
}

// An image's pictures as bytes for the rendezvous store (CBOR), and back.
std::string pack(const std::vector<PictureFile>& files) {
  nlohmann::json list = nlohmann::json::array();
  for (const PictureFile& f : files)
    list.push_back(nlohmann::json::array(
        {f.name, nlohmann::json::binary(std::vector<uint8_t>(f.png.begin(), f.png.end()))}));
  const std::vector<uint8_t> cbor = nlohmann::json::to_cbor(list);
  return {cbor.begin(), cbor.end()};
}

std::vector<PictureFile> unpack(const std::string& bytes) {
  std::vector<PictureFile> files;
  for (const nlohmann::json& f : nlohmann::json::from_cbor(bytes)) {
    const std::vector<uint8_t>& png = f.at(1).get_binary();
    files.push_back({f.at(0).get<std::string>(), std::string(png.begin(), png.end())});
  }
  return files;
}

// The positions of the first `count` images among those the ranks drew, on every rank.
std::vector<size_t> first_drawn(distributed::Group& group, const std::vector<ImagePictures>& drawn,
                                int count) {
  const size_t mine = size_t(group.world().rank * count);
  std::vector<int64_t> slots(size_t(group.world().size * count));  // position + 1; 0: none
  for (size_t k = 0; k < drawn.size(); ++k) slots[mine + k] = int64_t(drawn[k].image) + 1;
  at::Tensor all = at::tensor(slots, at::kLong).to(group.device());
  group.all_reduce(all).wait();
  all = all.cpu();
  const int64_t* positions = all.data_ptr<int64_t>();
  std::vector<size_t> first;
  for (int64_t i = 0; i < all.numel(); ++i)
    if (positions[i] > 0) first.push_back(size_t(positions[i] - 1));
  std::sort(first.begin(), first.end());
  first.resize(std::min(first.size(), size_t(count)));
  return first;
}

// Under a launcher: the pictures one process draws, those of the first `count` images evaluated,
// written by rank 0 alone. Each rank drew those of the first `count` images evaluated in its
// share (`drawn`, by position in the whole): the first `count` of all are among them, whichever
// records were skipped.
void write_on_rank0(distributed::Group& group, const std::vector<ImagePictures>& drawn, int count,
                    const std::string& dir) {
  for (const size_t image : first_drawn(group, drawn, count)) {
    std::string mine;
    for (const ImagePictures& p : drawn)
      if (p.image == image) mine = pack(p.files);
    for (const std::string& part :
         distributed::gather_to_rank0(group, "eval pictures " + std::to_string(image), mine))
      if (!part.empty()) write_pictures(dir, unpack(part));
  }
}

}  // namespace

TeacherEmbedding stored_embeddings(std::shared_ptr<const store::Reader> reader) {
  return [reader](const std::string& id, const at::Tensor&) {
    return reader->embedding(id).unsqueeze(0);
  };
}

EvalModels load_eval_models(const EvalRequest& r) {
  const io::Weights student = io::read_weights(r.student);
  const models::EncoderConfig config =
      models::encoder_config_of(student, r.student_model, "--student-model");
  EvalModels m{models::build_sam(config), nullptr};
  io::load_state_dict(*m.student->image_encoder, student.encoder(), "", student.file);

  const bool own = r.student_decoder != StudentDecoder::teacher &&
                   models::load_sam_heads(*m.student, student.entries, student.file);
  if (r.student_decoder == StudentDecoder::own && !own)
    throw Error("eval: --student-decoder own, but '" + student.file +
                "' holds no prompt encoder and mask decoder");
  if (own && r.teacher_checkpoint.empty()) return m;  // the student's heads serve both
  const std::string source =
      r.teacher_checkpoint.empty() ? student.file : io::resolve_weights(r.teacher_checkpoint);
  models::Sam heads = own ? models::build_sam(config) : m.student;
  if (!models::load_sam_heads(*heads, io::read_state_dict(source), source))
    throw Error("eval: '" + source + "' holds no prompt encoder and mask decoder; give " +
                "--teacher-checkpoint, a full SAM checkpoint of the teacher");
  if (own) m.teacher_heads = heads;
  return m;
}

EvalReport evaluate_images(Evaluator& evaluator, const data::Dataset& images,
                           const TeacherEmbedding& teacher, const store::Reader* cache,
                           const Pictures& pictures, bool quiet, bool strict) {
  const auto began = Clock::now();
  const data::ImageDecoder decoder = data::default_image_decoder();  // for the pictures
  data::ReadOptions read;  // the next images are read while the models run on this one
  read.records = true;
  read.resized = true;
  read.input = false;
  read.strict = strict;
  data::ImageReader reader(images, cached_or_decoded(cache), read);
  EvalReport report = evaluator.empty_report();
  std::optional<Progress> progress;
  if (!quiet) progress.emplace("eval", int64_t(images.size()));
  for (size_t i = 0; i < images.size(); ++i) {
    data::ImageItem image = *reader.next();
    if (image.skip) {
      report.skipped.push_back(std::move(*image.skip));
      continue;
    }
    const data::Entry& entry = *image.entry;
    const data::Record& record = image.record;
    const at::Tensor& resized = image.resized;
    auto start = Clock::now();
    const at::Tensor embedding = teacher(entry.id, resized);
    report.timings.teacher_embed_s += seconds_since(start);
    const bool draw = pictures.take && report.images < pictures.images;
    std::vector<PromptMasks> masks;
    const size_t first = report.outcomes.size();
    evaluator.evaluate_image(entry.id, record, resized, embedding, report, draw ? &masks : nullptr);
    if (draw)
      pictures.take({i, draw_pictures(data::read_image(entry, decoder, &record), masks,
                                      &report.outcomes[first])});
    if (progress)
      progress->update(int64_t(i + 1), std::to_string(report.outcomes.size()) + " prompts");
  }
  if (progress) progress->finish(std::to_string(report.outcomes.size()) + " prompts");
  report.timings.total_s = seconds_since(began);
  return report;
}

EvalReport run_eval(const EvalRequest& r) {
  const auto began = Clock::now();
  std::vector<data::Skip> orphans;
  data::Dataset dataset = data::Dataset::open(r.data, r.images, &orphans).subset(r.subset);
  if (r.strict && !orphans.empty()) throw Error(data::describe(orphans.front()));
  for (const data::Skip& s : orphans) log::warn("skipping " + data::describe(s));
  if (r.max_images > 0 && size_t(r.max_images) < dataset.size())
    dataset = dataset.head(size_t(r.max_images));
  if (dataset.size() == 0) throw Error("eval: no images selected from --data");
  data::check_prompts_fit(r.settings.prompts, dataset, "--prompts");
  if (r.group)
    distributed::check_same_run(*r.group, shared_request(r, dataset),
                                r.store.empty() ? "" : store::manifest_digest(r.store));

  const at::Device device = resolve_device(r.device);
  std::shared_ptr<store::Reader> reader;
  if (!r.store.empty()) reader = std::make_shared<store::Reader>(r.store);
  TeacherEmbedding teacher = reader ? from_store(reader, r, dataset) : from_model(r, device);
  EvalModels models = load_eval_models(r);
  models.student->to(device);
  if (models.teacher_heads) models.teacher_heads->to(device);
  Evaluator evaluator(models.student, r.settings, models.teacher_heads);
  const size_t rank = r.group ? size_t(r.group->world().rank) : 0;
  const size_t ranks = r.group ? size_t(r.group->world().size) : 1;
  std::vector<ImagePictures> drawn;  // under a launcher, until rank 0 writes them
  Pictures pictures;
  if (!r.vis_dir.empty() && r.vis_images > 0 && rank == 0)
    prepare_pictures_folder(r.vis_dir, "--vis");
  if (!r.vis_dir.empty() && r.vis_images > 0)
    pictures = {r.vis_images, [&](ImagePictures p) {
                  if (r.group) {
                    p.image = rank + p.image * ranks;  // its position in `dataset`
                    drawn.push_back(std::move(p));
                  } else {
                    write_pictures(r.vis_dir, p.files);
                  }
                }};
  EvalReport report = evaluate_images(evaluator, dataset.interleaved(rank, ranks), teacher,
                                      reader.get(), pictures, rank != 0, r.strict);
  if (r.group) {
    report = gather_on_rank0(*r.group, std::move(report), dataset);
    if (pictures.take) write_on_rank0(*r.group, drawn, r.vis_images, r.vis_dir);
  }
  report.skipped.insert(report.skipped.begin(), orphans.begin(), orphans.end());
  report.timings.total_s = seconds_since(began);
  return report;
}

}  // namespace sd::eval
