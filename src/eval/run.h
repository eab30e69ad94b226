#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "distributed/group.h"
#include "eval/evaluator.h"
#include "eval/report.h"
#include "models/sam.h"
#include "store/reader.h"
#include "util/device.h"

// `samdistill eval` as a library call: load both models, walk the images, build the report.
namespace sd::eval {

// Whose prompt encoder and mask decoder make the student's masks: the teacher's (the paper's
// measure: only the encoder differs), the student's own (a fine-tuned student's), or automatic
// (own when the student's weights hold them).
enum class StudentDecoder { automatic, teacher, own };

struct EvalRequest {
  std::string teacher;             // preset or JSON config; "": the store's, else the checkpoint's
  std::string teacher_checkpoint;  // full SAM checkpoint (file or run folder)
  std::string store;               // teacher embeddings from here: the teacher never runs
  std::string student;             // weights: a file or run folder
  std::string student_model;  // preset or JSON config; "": the student run's, else the weights'
  StudentDecoder student_decoder = StudentDecoder::automatic;
  std::vector<std::string> data;  // image sources (data::Dataset::open): records, and images
  std::string images;             // the images of COCO files in `data` ("": each JSON's folder)
  data::SubsetSpec subset;
  int max_images = 0;  // 0: all
  EvalSettings settings;
  DeviceChoice device = DeviceChoice::automatic;
  // For each prompt of the first `vis_images` images, a PNG [image with the prompt | teacher's
  // mask (blue) | student's mask (orange)] named <image>_<annotation>_<kind>_iou<IoU>.png.
  std::string vis_dir;
  int vis_images = 4;
  // A bad record (image, JSON or RLE; an image without its JSON) is skipped and listed in the
  // report; with `strict` it is an sd::Error naming the file.
  bool strict = false;
  // A launched run's ranks: each evaluates its interleaved share of the images
  // (Dataset::interleaved) and rank 0 gets the report of them all; null for one process. The
  // ranks first compare their requests and images (distributed::check_same_run).
  distributed::Group* group = nullptr;
};

// The two models of an evaluation: the student, and the teacher's prompt encoder and mask
// decoder (null when the student uses them too). The teacher's come from
// `teacher_checkpoint` when given, else from `student` when it is a full SAM checkpoint;
// sd::Error saying which flag to give otherwise.
struct EvalModels {
  models::Sam student;
  models::Sam teacher_heads;
};
EvalModels load_eval_models(const EvalRequest& request);

// The teacher's 1x256x64x64 embedding of an image (id, uint8 resized pixels).
using TeacherEmbedding =
    std::function<at::Tensor(const std::string& id, const at::Tensor& resized)>;
TeacherEmbedding stored_embeddings(std::shared_ptr<const store::Reader> reader);

// The pictures of one image (see EvalRequest::vis_dir): a PNG per prompt, by file name.
struct PictureFile {
  std::string name, png;
};
struct ImagePictures {
  size_t image = 0;  // its position in the images evaluated (evaluate_images' `images`)
  std::vector<PictureFile> files;
};

// Pictures of the first `images` images evaluated, each image's handed to `take`; none without
// it.
struct Pictures {
  int images = 0;
  std::function<void(ImagePictures)> take;
};

// Evaluates every image of `images` (pixels from `cache`, when given and holding them, else
// decoded), with a progress line unless `quiet`. A bad record is skipped into the report's
// `skipped`, or with `strict` thrown (sd::Error naming the file).
EvalReport evaluate_images(Evaluator& evaluator, const data::Dataset& images,
                           const TeacherEmbedding& teacher, const store::Reader* cache,
                           const Pictures& pictures = {}, bool quiet = false, bool strict = false);

// Runs the evaluation (a progress line on stderr; rank 0's alone under a launcher). Under a
// launcher rank 0's report is the one a single process makes, except for its timings; each
// other rank's covers its share. PeerLost when a rank stopped. sd::Error on bad input, naming the
// file, key or flag at fault; a store not made by the given teacher is refused naming the field.
EvalReport run_eval(const EvalRequest& request);

}  // namespace sd::eval

namespace sd {
template <>
struct WordsOf<eval::StudentDecoder> {
  static constexpr std::pair<eval::StudentDecoder, const char*> list[] = {
      {eval::StudentDecoder::teacher, "teacher"},
      {eval::StudentDecoder::own, "own"},
      {eval::StudentDecoder::automatic, "auto"}};
};
}  // namespace sd
