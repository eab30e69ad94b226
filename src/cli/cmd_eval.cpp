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
  std::string multimask = "auto";
  std::string report;
  std::string html;         // a page to look at, with pictures
  std::string tensorboard;  // an event-file folder
  std::string everything_config;
};

void run_eval(EvalArgs& a, const Globals& globals) {
  a.request.settings.prompts = data::parse_prompt_specs(a.prompts);
  a.request.settings.multimask = eval::parse_multimask(a.multimask);
  if (!a.everything_config.empty())
    a.request.settings.amg = segment::amg_config_table().read(
        io::read_json_file(a.everything_config), a.everything_config);
  if (!a.html.empty() && a.request.vis_dir.empty())
    a.request.vis_dir = io::in_folder(a.html, "pictures");
  const std::unique_ptr<distributed::Group> ranks =
      join_ranks(globals, parse_word<DeviceChoice>(a.request.device, "--device"));
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
  auto a = std::make_shared<EvalArgs>();
  eval::EvalRequest& r = a->request;
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "mIoU of the student's masks against the teacher's for the same prompts (and of "
      "both against the ground truth)");
  cmd->add_option("--teacher", r.teacher,
                  "Teacher architecture: preset or JSON config (default: the store's, else what "
                  "--teacher-checkpoint holds)");
  cmd->add_option(
      "--teacher-checkpoint", r.teacher_checkpoint,
      "Teacher weights, a full SAM checkpoint (file or run folder): its encoder when "
      "there is no --store, and its prompt encoder and mask decoder (for both models unless the "
      "student has its own, see --student-decoder)");
  cmd->add_option("--store", r.store,
                  "Embedding store with the teacher's embeddings (the teacher then never runs)");
  cmd->add_option("--student", r.student, "Student weights: a checkpoint or a run folder")
      ->required();
  cmd->add_option(
      "--student-model", r.student_model,
      "Student architecture: preset or JSON config (default: --student's run's, else what "
      "--student holds)");
  cmd->add_option(
         "--student-decoder", r.student_decoder,
         "The student's prompt encoder + mask decoder: teacher (only the encoder differs), "
         "own (a fine-tuned student's), auto (own when --student holds them)")
      ->capture_default_str();
  add_data_options(cmd, r.data, r.images)->required();
  add_subset_options(cmd, r.subset);
  cmd->add_option("--max-images", r.max_images,
                  "Evaluate the first N images of the selection (0: all; bad records among them "
                  "are skipped)")
      ->capture_default_str();
  cmd->add_option("--max-prompts-per-image", r.settings.max_prompts_per_image,
                  "Annotations per image (the first with a non-empty mask); each gives one "
                  "prompt of every kind")
      ->capture_default_str();
  cmd->add_option("--prompts", a->prompts,
                  "Prompt kinds: box, point, center, fgbg@D (D pixels); without masks (plain image "
                  "folders) grid@N (N x N points) and random@K (K points); everything[@N]: SAM's "
                  "automatic masks of both models, each teacher mask scored by its best student "
                  "mask")
      ->capture_default_str();
  cmd->add_option("--multimask", a->multimask,
                  "score | oracle | off, or auto: score for single points, off for boxes and "
                  "two points")
      ->capture_default_str();
  cmd->add_option("--everything-config", a->everything_config,
                  "JSON of the automatic mask generator's keys for --prompts everything (as "
                  "segment's --config; default SAM's parameters)");
  cmd->add_option("--prompt-seed", r.settings.seed, "Seed of the fgbg point placement")
      ->capture_default_str();
  cmd->add_option("--device", r.device, "cpu, cuda or auto (cuda when present)")
      ->capture_default_str();
  add_amp_option(cmd, r.settings.amp);
  cmd->add_option("--report", a->report, "Write the report as JSON to this file");
  cmd->add_option("--vis", r.vis_dir,
                  "Folder for side-by-side PNGs (image with prompt | teacher's mask | student's "
                  "mask), the IoU in each file name (under a launcher rank 0 writes them all)");
  cmd->add_option("--html", a->html,
                  "Folder for a page to look at in a browser (index.html, no network needed): "
                  "the summary, IoU histograms, every prompt sortable with its picture "
                  "(pictures/: --vis's, or drawn there)");
  cmd->add_option("--tensorboard", a->tensorboard,
                  "Folder for a TensorBoard event file: mIoU per kind, and --vis's pictures as "
                  "images");
  cmd->add_option("--vis-images", r.vis_images, "Images with pictures (the first ones)")
      ->capture_default_str();
  cmd->add_flag("--strict", r.strict,
                "Stop with an error at the first bad record: image, JSON or RLE (default: skip "
                "it, listed in the report)");
  cmd->callback([a, &globals] { run_eval(*a, globals); });
}

}  // namespace sd::cli
