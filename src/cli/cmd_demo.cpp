#include <ATen/ATen.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "data/dataset.h"
#include "data/prompts.h"
#include "distill/distillation.h"
#include "eval/html.h"
#include "eval/run.h"
#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "models/config.h"
#include "models/sam.h"
#include "store/embed.h"
#include "train/config.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/log.h"
#include "util/names.h"

namespace fs = std::filesystem;

// The whole pipeline on data/sample in minutes on a laptop CPU: teacher -> embed -> train the
// student -> eval before and after -> pictures -> summary. Everything goes under --out.
namespace sd::cli {
namespace {

// A small SAM ViT (the reference fixtures' size): a few seconds per image on a CPU.
const char* kSmallTeacher =
    R"({"embed_dim": 96, "depth": 4, "num_heads": 3, "global_attn_indexes": [1, 3], "window_size": 14})";

struct DemoArgs {
  std::string out = "demo-run", data = "data/sample";
  std::string teacher, teacher_checkpoint;
  std::string student_model = "vit_t";
  int steps = 12, batch_size = 2, max_images = 2, max_prompts = 4;
  double lr = 0.002;
  std::string prompts = "box,point,center,fgbg@100";
  uint64_t seed = 0;
};

// The teacher's architecture and full SAM checkpoint: the user's, or a random small one.
std::pair<std::string, std::string> demo_teacher(const DemoArgs& a) {
  if (!a.teacher_checkpoint.empty()) return {a.teacher, a.teacher_checkpoint};
  log::warn(
      "demo: NO SAM WEIGHTS GIVEN: the teacher is a small RANDOMLY INITIALISED SAM; its masks "
      "mean nothing. The demo shows the pipeline and the student learning to agree with "
      "it; pass --teacher vit_h --teacher-checkpoint sam_vit_h_4b8939.pth for a real one.");
  const std::string config = a.out + "/teacher.json", weights = a.out + "/teacher.pth";
  write_file_atomic(config, std::string(kSmallTeacher) + "\n");
  at::manual_seed(int64_t(a.seed));
  models::Sam sam = models::build_sam(models::resolve_encoder(config));
  io::write_state_dict(weights, io::state_dict(*sam));
  return {config, weights};
}

eval::EvalRequest eval_request(const DemoArgs& a, const std::string& teacher,
                               const std::string& teacher_checkpoint, const std::string& store) {
  eval::EvalRequest r;
  r.teacher = teacher;
  r.teacher_checkpoint = teacher_checkpoint;
  r.store = store;
  r.student_model = a.student_model;
  r.data = {a.data};
  r.max_images = a.max_images;
  r.settings.prompts = data::parse_prompt_specs(a.prompts);
  r.settings.max_prompts_per_image = a.max_prompts;
  r.settings.seed = a.seed;
  r.vis_images = 1;
  r.device = DeviceChoice::cpu;
  return r;
}

// Evaluates `student`, with pictures in `vis_dir`, and writes the report to `report_path`.
eval::EvalReport evaluate(eval::EvalRequest request, const std::string& student,
                          const std::string& vis_dir, const std::string& report_path) {
  request.student = student;
  request.vis_dir = vis_dir;
  eval::EvalReport report = eval::run_eval(request);
  write_file_atomic(report_path, json_text(eval::report_json(report)) + "\n");
  return report;
}

std::string summary(const eval::EvalReport& before, const eval::EvalReport& after) {
  auto b = before.mean_by_kind(&eval::PromptOutcome::iou),
       c = after.mean_by_kind(&eval::PromptOutcome::iou);
  std::string out = "mIoU of the student's masks vs the teacher's:\n";
  char line[120];
  std::snprintf(line, sizeof line, "  %-12s %8s %8s %8s\n", "prompt", "before", "after", "change");
  out += line;
  for (const std::string& kind : after.kinds) {
    if (!b.count(kind) || !c.count(kind)) continue;
    std::snprintf(line, sizeof line, "  %-12s %8.4f %8.4f %+8.4f\n", kind.c_str(), b[kind], c[kind],
                  c[kind] - b[kind]);
    out += line;
  }
  return out;
}

// What the demo writes under --out; a rerun replaces it. The marker file says a folder is a
// demo's, so that nothing else is ever removed.
const char* const kMarker = "demo-output.txt";
const char* const kOutputs[] = {
    "teacher.json",    "teacher.pth", "store", "student_init.pth", "eval-before.json",
    "eval-after.json", "vis-before",  "vis",   "report",           "run"};

// A fresh demo in `out` each time: the previous demo's outputs go; a folder that holds
// anything else is refused.
void prepare_demo_folder(const std::string& out) {
  if (fs::exists(out) && !fs::is_empty(out)) {
    if (!fs::exists(fs::path(out) / kMarker))
      throw Error("demo: '" + out + "' is not empty and holds no earlier demo (" + kMarker +
                  "): give another --out");
    log::info("demo: replacing the previous demo's output in '" + out + "'");
    for (const char* name : kOutputs) fs::remove_all(fs::path(out) / name);
  }
  fs::create_directories(out);
  write_file_atomic((fs::path(out) / kMarker).string(),
                    "Written by `samdistill demo`; a rerun replaces this folder's demo output.\n");
}

// What a user can get wrong, checked before anything is written.
void check_demo_inputs(const DemoArgs& a) {
  if (!fs::exists(a.data))
    throw Error("demo: --data '" + a.data + "' does not exist" +
                (a.data == DemoArgs{}.data
                     ? " (the default is the checkout's data/sample, relative to the working "
                       "directory: run the demo from the checkout, or give --data)"
                     : ""));
  if (data::Dataset::open({a.data}, "", nullptr).size() == 0)
    throw Error("demo: --data '" + a.data + "' holds no images");
  if (!a.teacher_checkpoint.empty() && !fs::exists(a.teacher_checkpoint))
    throw Error("demo: --teacher-checkpoint '" + a.teacher_checkpoint + "' does not exist");
  if (!a.teacher.empty()) models::resolve_encoder(a.teacher);
  models::resolve_encoder(a.student_model);
  data::parse_prompt_specs(a.prompts);
}

void run_demo(const DemoArgs& a) {
  check_demo_inputs(a);
  prepare_demo_folder(a.out);
  const auto [teacher, teacher_checkpoint] = demo_teacher(a);
  const std::string store = a.out + "/store", run = a.out + "/run";

  log::info("demo 1/4: teacher embeddings of " + a.data + " -> " + store);
  store::EmbedOptions embed;
  embed.teacher = teacher;
  embed.teacher_checkpoint = teacher_checkpoint;
  embed.data = {a.data};
  embed.store = store;
  embed.cache_images = true;
  embed.device = DeviceChoice::cpu;
  store::embed(embed);

  // The student's starting point, so that "before" is exactly where training starts.
  const std::string init = a.out + "/student_init.pth";
  at::manual_seed(int64_t(a.seed) + 1);
  io::write_state_dict(
      init, io::state_dict(*models::make_image_encoder(models::resolve_encoder(a.student_model))));

  log::info("demo 2/4: eval of the untrained student");
  const eval::EvalReport before =
      evaluate(eval_request(a, teacher, teacher_checkpoint, store), init, a.out + "/vis-before",
               a.out + "/eval-before.json");

  log::info("demo 3/4: training the " + a.student_model + " student for " +
            std::to_string(a.steps) + " steps -> " + run);
  distill::TrainRequest train;
  nlohmann::json overrides = {{"student_model", a.student_model},
                              {"init", init},
                              {"store", store},
                              {"max_steps", a.steps},
                              {"batch_size", a.batch_size},
                              {"lr", a.lr},
                              {"warmup_steps", std::max(1, a.steps / 10)},
                              {"seed", a.seed},
                              {"device", "cpu"},
                              {"checkpoint_every", 0},
                              {"log_every", 1}};
  train.config = train::train_config_from_json(overrides, "demo");
  train.run.dir = run;
  const train::TrainSummary trained = distill::run_distillation(train);

  log::info("demo 4/4: eval of the trained student");
  const eval::EvalReport after = evaluate(eval_request(a, teacher, teacher_checkpoint, store), run,
                                          a.out + "/vis", a.out + "/eval-after.json");

  eval::write_report_html(after, a.out + "/report", a.out + "/vis",
                          "samdistill demo: the trained student vs the teacher");

  std::cout << "\n" << eval::report_table(after) << "\n" << summary(before, after);
  std::printf("distillation loss %.4g -> %.4g over %lld steps\n\n", trained.first_loss,
              trained.last_loss, (long long)trained.steps);
  std::cout << "outputs in " << a.out << ":\n"
            << "  teacher        " << teacher_checkpoint << "\n"
            << "  store          " << store << "  (teacher embeddings + resized images)\n"
            << "  student start  " << init << "\n"
            << "  run            " << run
            << "  (config.json, metrics.jsonl, TensorBoard event file, loss.png, final.pth)\n"
            << "  reports        " << a.out << "/eval-before.json, " << a.out
            << "/eval-after.json\n"
            << "  pictures       " << a.out << "/vis-before/, " << a.out
            << "/vis/  (image+prompt | teacher | student)\n"
            << "  page           " << a.out << "/report/index.html  (open in a browser)\n";
}

}  // namespace

void add_demo_command(CLI::App& app, const Globals&) {
  auto a = std::make_shared<DemoArgs>();
  CLI::App* cmd = app.add_subcommand(
      "demo",
      "The whole pipeline on data/sample in minutes on a CPU: teacher, embed, train the "
      "student, eval before and after, pictures, summary");
  cmd->add_option("--out", a->out, "Folder for everything the demo writes")->capture_default_str();
  cmd->add_option("--data", a->data,
                  "Images: an SA-1B folder or .tar, or a COCO file (masks for --prompts; an "
                  "image folder with --prompts grid@N)")
      ->capture_default_str();
  cmd->add_option("--teacher", a->teacher,
                  "Teacher architecture with --teacher-checkpoint (default: what it holds)");
  cmd->add_option("--teacher-checkpoint", a->teacher_checkpoint,
                  "A real SAM checkpoint (default: a small randomly initialised teacher)");
  cmd->add_option("--student-model", a->student_model,
                  "Student architecture (preset or JSON config)")
      ->capture_default_str();
  cmd->add_option("--steps", a->steps, "Training steps")->capture_default_str();
  cmd->add_option("--batch-size", a->batch_size, "Training batch size")->capture_default_str();
  cmd->add_option("--lr", a->lr, "Peak learning rate")->capture_default_str();
  cmd->add_option("--max-images", a->max_images, "Images evaluated (0: all)")
      ->capture_default_str();
  cmd->add_option("--max-prompts-per-image", a->max_prompts, "Annotations per evaluated image")
      ->capture_default_str();
  cmd->add_option("--prompts", a->prompts, "Prompt kinds evaluated")->capture_default_str();
  cmd->add_option("--seed", a->seed, "Seed of the random weights and prompts")
      ->capture_default_str();
  cmd->callback([a] { run_demo(*a); });
}

}  // namespace sd::cli
