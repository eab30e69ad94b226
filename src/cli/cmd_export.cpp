#include <filesystem>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "io/weights.h"
#include "models/sam_weights.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace sd::cli {
namespace {

struct ExportArgs {
  std::string student, student_model, decoder_from, out;
  bool overwrite = false;
};

void run_export(const ExportArgs& a) {
  if (fs::exists(a.out) && !a.overwrite)
    throw Error("export: --out '" + a.out +
                "' exists: give --overwrite to replace it, or another --out");
  if (fs::is_directory(a.out)) throw Error("export: --out '" + a.out + "' is a folder, not a file");
  const io::Weights student = io::read_weights(a.student);
  const models::EncoderConfig config =
      models::encoder_config_of(student, a.student_model, "--student-model");
  // A fine-tuned student (finetune's final.pth) brings its own prompt encoder and mask decoder.
  const std::string decoder_from = a.decoder_from.empty() ? student.file : a.decoder_from;
  io::StateDict sam = models::assemble_sam(student.encoder(), config, decoder_from);
  io::write_state_dict(a.out, sam);
  std::cout << "wrote " << a.out << ": " << sam.size() << " entries, " << io::count_parameters(sam)
            << " parameters (" << models::preset_name(config) << " encoder)\n";
}

}  // namespace

void add_export_command(CLI::App& app, const Globals&) {
  auto a = std::make_shared<ExportArgs>();
  CLI::App* cmd = app.add_subcommand(
      "export",
      "Write a full SAM checkpoint (student encoder + the teacher's, or a fine-tuned, prompt "
      "encoder and mask decoder) under the official key names, loadable by torch.load and "
      "MobileSAM");
  cmd->add_option("--student", a->student,
                  "Student weights: a run folder (its final.pth, else newest checkpoint) or a file")
      ->required();
  cmd->add_option(
      "--student-model", a->student_model,
      "Student architecture: preset or JSON config (default: --student's run's, else what "
      "--student holds)");
  cmd->add_option("--decoder-from", a->decoder_from,
                  "Full SAM checkpoint whose prompt encoder and mask decoder to take (default: "
                  "--student's own, when it is a full SAM checkpoint such as a finetune run's)");
  cmd->add_option("--out", a->out, "Output checkpoint (e.g. mobile_sam.pt)")->required();
  cmd->add_flag("--overwrite", a->overwrite, "Replace an existing --out");
  cmd->callback([a] { run_export(*a); });
}

}  // namespace sd::cli
