#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/shared_options.h"
#include "distill/distillation.h"
#include "train/config.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/stop_signal.h"

namespace sd::cli {
namespace {

struct TrainArgs {
  RunConfigArgs run;
  std::string teacher, teacher_checkpoint;
};

void run_train(const TrainArgs& a, const Globals& globals) {
  distill::TrainRequest request;
  request.config = read_run_config(a.run, train::train_config_table().keys(),
                                   train::train_config_defaults(), train::train_config_from_json);
  if (request.config.store.empty()) throw Error("train: no embedding store given (--store)");
  request.run = run_start(a.run);
  request.teacher = a.teacher;
  request.teacher_checkpoint = a.teacher_checkpoint;
  const std::unique_ptr<distributed::Group> ranks = join_ranks(globals, request.config.device);
  request.group = ranks.get();
  const train::TrainSummary summary = distill::run_distillation(request);
  if (globals.world.writes()) print_train_summary(summary);
}

}  // namespace

void print_train_summary(const train::TrainSummary& s) {
  if (s.already_complete) {
    std::cout << "already complete: " << s.steps << " steps were done before this call\n"
              << "weights      " << s.final_weights << "\n";
    return;
  }
  std::cout << "steps        " << s.steps << " (" << s.steps_this_call << " in this call)\n"
            << "loss         " << format_number(s.first_loss) << " -> "
            << format_number(s.last_loss) << "\n"
            << "images/s     " << format_number(s.images_per_s) << "\n"
            << "data wait    " << format_number(s.data_wait_pct) << "%\n"
            << "non-finite   " << s.nonfinite_total << " steps skipped\n"
            << "bad records  " << s.skipped_records
            << " skipped (damaged store records or unreadable images, each named in a warning)\n"
            << "weights      " << s.final_weights << "\n";
}

void add_train_command(CLI::App& app, const Globals& globals) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand(
      "train",
      "Distil a student encoder from stored teacher embeddings (MSE, Huber or L1), with exact "
      "resume "
      "(configs/mobilesam_vit_t.json: the paper's recipe)");
  add_run_config_options(cmd, a->run, train::train_config_table().keys());
  cmd->add_option("--teacher", a->teacher,
                  "Refuse a store not made by this architecture (preset or config)");
  cmd->add_option("--teacher-checkpoint", a->teacher_checkpoint,
                  "Refuse a store not made with these teacher weights");
  cmd->callback([a, &globals] {
    catch_stop_signals();  // a signal stops after the current step, with a checkpoint
    run_train(*a, globals);
  });
}

}  // namespace sd::cli
