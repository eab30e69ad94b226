#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/shared_options.h"
#include "eval/events.h"
#include "eval/html.h"
#include "eval/run.h"
#include "io/config.h"
#include "io/run_folder.h"
#include "segment/amg_config.h"
#include "util/atomic_file.h"
#include "util/log.h"
#include "util/names.h"

namespace sd::cli {
namespace {

struct EvalArgs {
  eval::EvalRequest request;
  std::string prompts = eval::kDefaultPrompts;
  std::string report;
  std::string html;         // a page to look at, with pictures
  std::string tensorboard;  // an event-file folder
  std::string everything_config;
};

using io::any_value;
using io::field;
using io::non_negative;
using io::positive;

using R = eval::EvalRequest;
using S = eval::EvalSettings;

// The two models and what makes their masks.
std::vector<io::Field<R>> model_fields() {
  return {
      field("teacher", &R::teacher, "", any_value(),
            "Teacher architecture: preset or JSON config (default: the store's, else what "
            "--teacher-checkpoint holds)"),
      field("teacher_checkpoint", &R::teacher_checkpoint, "", any_value(),
            "Teacher weights, a full SAM checkpoint (file or run folder): its encoder when there "
            "is no --store, and its prompt encoder and mask decoder (for both models unless the "
            "student has its own, see --student-decoder)"),
      field("store", &R::store, "", any_value(),
            "Embedding store with the teacher's embeddings (the teacher then never runs)"),
      field("student", &R::student, "", any_value(),
            "Student weights: a checkpoint or a run folder"),
      field("student_model", &R::student_model, "", any_value(),
            "Student architecture: preset or JSON config (default: --student's run's, else what "
            "--student holds)"),
      field("student_decoder", &R::student_decoder, eval::StudentDecoder::automatic, any_value(),
            "The student's prompt encoder + mask decoder: teacher (only the encoder differs), own "
            "(a fine-tuned student's), auto (own when --student holds them)"),
  };
}

// The prompts and how they are scored.
std::vector<io::Field<S>> settings_fields() {
  return {
      field("max_prompts_per_image", &S::max_prompts_per_image, 64, positive(),
            "Annotations per image (the first with a non-empty mask); each gives one prompt of "
            "every kind"),
      field("multimask", &S::multimask, eval::Multimask::per_kind, any_value(),
            "score, oracle or off; auto: score for single points, off for boxes and two points"),
      field("prompt_seed", &S::seed, 0, any_value(),
            "Seed of the placed points: fgbg@D's and random@K's"),
      amp_field(&S::amp),
  };
}

// Where it runs, what it skips, the pictures.
std::vector<io::Field<R>> run_fields() {
  return {
      field("max_images", &R::max_images, 0, non_negative(),
            "Evaluate the first N images of the selection (0: all; bad records among them are "
            "skipped)"),
      device_field(&R::device),
      field("vis", &R::vis_dir, "", any_value(),
            "Folder for side-by-side PNGs (image with prompt | teacher's mask | student's mask), "
            "the IoU in each file name (under a launcher rank 0 writes them all)"),
      field("vis_images", &R::vis_images, 4, non_negative(),
            "Images with pictures (the first ones)"),
      field("strict", &R::strict, false, any_value(),
            "Stop with an error at the first bad record: image, JSON or RLE (default: skip it, "
            "listed in the report)"),
  };
}

// What the command reads and writes besides the request.
std::vector<io::Field<EvalArgs>> command_fields() {
  return {
      field("prompts", &EvalArgs::prompts, eval::kDefaultPrompts, any_value(),
            "Prompt kinds: box, point, center, fgbg@D (D pixels); without masks (plain image "
            "folders) grid@N (N x N points) and random@K (K points); everything[@N]: SAM's "
            "automatic masks of both models, each teacher mask scored by its best student mask"),
      field("everything_config", &EvalArgs::everything_config, "", any_value(),
            "JSON of the automatic mask generator's keys for --prompts everything (as segment's "
            "--config; default SAM's parameters)"),
      field("report", &EvalArgs::report, "", any_value(), "Write the report as JSON to this file"),
      field("html", &EvalArgs::html, "", any_value(),
            "Folder for a page to look at in a browser (index.html, no network needed): the "
            "summary, IoU histograms, every prompt sortable with its picture (pictures/: --vis's, "
            "or drawn there)"),
      field("tensorboard", &EvalArgs::tensorboard, "", any_value(),
            "Folder for a TensorBoard event file: mIoU per kind, and --vis's pictures as images"),
  };
}

// eval's options, each once.
const io::ConfigTable<EvalArgs>& eval_table() {
  static const io::ConfigTable<EvalArgs> table = io::agreeing(
      io::ConfigTable<R>(model_fields())
          .plus(data_fields<R>())
          .plus(subset_table().as_part_of(&R::subset).fields())
          .plus(io::ConfigTable<S>(settings_fields()).as_part_of(&R::settings).fields())
          .plus(run_fields())
          .as_part_of(&EvalArgs::request)
          .plus(command_fields()));
  return table;
}

void run_eval(const KeyFlags& given, const Globals& globals) {
  EvalArgs a = read_flags(given, eval_table());
  a.request.settings.prompts = data::parse_prompt_specs(a.prompts);
  if (!a.everything_config.empty())
    a.request.settings.amg = segment::amg_config_table().read(
        io::read_json_file(a.everything_config), a.everything_config);
  if (!a.html.empty() && a.request.vis_dir.empty())
    a.request.vis_dir = io::in_folder(a.html, "pictures");
  const std::unique_ptr<distributed::Group> ranks = join_ranks(globals, a.request.device);
  a.request.group = ranks.get();
  eval::EvalReport report = eval::run_eval(a.request);
  if (!globals.world.writes()) return;  // rank 0 has every rank's outcomes
  std::cout << eval::report_table(report);
  if (!a.report.empty()) {
    write_file_atomic(a.report, json_text(eval::report_json(report)) + "\n");
    std::cout << "report: " << a.report << "\n";
  }
  if (!a.html.empty()) {
    eval::write_report_html(report, a.html, a.request.vis_dir,
                            "samdistill eval: " + a.request.student);
    std::cout << "page: " << io::in_folder(a.html, "index.html") << "\n";
  }
  if (!a.tensorboard.empty()) {
    eval::write_eval_events(report, a.request.vis_dir, a.tensorboard);
    std::cout << "TensorBoard: " << a.tensorboard << "\n";
  }
}

}  // namespace

void add_eval_command(CLI::App& app, const Globals& globals) {
  auto given = std::make_shared<KeyFlags>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "mIoU of the student's masks against the teacher's for the same prompts (and of "
      "both against the ground truth)");
  add_key_flags(cmd, *given, eval_table().keys(), {{"student", {"", true}}, {"data", {"", true}}});
  cmd->callback([given, &globals] { run_eval(*given, globals); });
}

}  // namespace sd::cli
