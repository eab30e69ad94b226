#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/shared_options.h"
#include "finetune/config.h"
#include "finetune/finetuner.h"
#include "io/run_folder.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/stop_signal.h"

namespace sd::cli {
namespace {

void run_finetune(const RunConfigArgs& a, const Globals& globals) {
  finetune::FinetuneRequest request;
  request.config =
      read_run_config(a, finetune::finetune_config_table().keys(),
                      finetune::finetune_config_defaults(), finetune::finetune_config_from_json);
  if (request.config.loop.store.empty())
    throw Error("finetune: no embedding store given (--store)");
  request.run = run_start(a);
  const std::unique_ptr<distributed::Group> ranks = join_ranks(globals, request.config.loop.device);
  request.group = ranks.get();
  const train::TrainSummary s = finetune::finetune(request);
  if (!globals.world.writes()) return;
  print_train_summary(s);
  if (s.already_complete) return;
  std::cout << "held-out     mIoU vs teacher";
  for (size_t i = 0; i < s.scores.size(); ++i)
    std::cout << (i == 0   ? " before "
                  : i == 1 ? ", after epochs "
                           : " ")
              << format_number(s.scores[i]);
  std::cout << "; final.pth has " << format_number(s.best_score) << ", the weights of step "
            << s.best_step << " (the best)"
            << (s.stopped_early ? "; stopped early: no better for patience epochs" : "") << "\n";
  std::cout << "held-out     report " << io::RunPaths{request.run.dir}.heldout_page()
            << " (final.pth's weights, step " << s.best_step
            << "; heldout/step-N.json: each validation's)\n";
}

}  // namespace

void add_finetune_command(CLI::App& app, const Globals& globals) {
  auto a = std::make_shared<RunConfigArgs>();
  CLI::App* cmd = app.add_subcommand(
      "finetune",
      "Fine-tune the student's mask decoder on the teacher's masks (or the annotations), "
      "keeping the best held-out mIoU; final.pth is a full SAM checkpoint");
  add_run_config_options(cmd, *a, finetune::finetune_config_table().keys());
  cmd->callback([a, &globals] {
    catch_stop_signals();  // a signal stops after the current step, with a checkpoint
    run_finetune(*a, globals);
  });
}

}  // namespace sd::cli
