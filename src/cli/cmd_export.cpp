#include <filesystem>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "io/weights.h"
#include "models/sam.h"
#include "models/sam_weights.h"
#include "onnx/export.h"
#include "onnx/web.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace sd::cli {
namespace {

struct ExportArgs {
  std::string student, student_model, decoder_from, out, format = "pt", web, ort_web;
  onnx::ExportOptions onnx;
  bool overwrite = false;
};

// The assembled SAM as DIR/encoder.onnx and DIR/decoder.onnx.
// With --web, the page too (ort_web: onnxruntime-web's folder).
void write_onnx(const ExportArgs& a, const io::StateDict& sam_entries,
                const models::EncoderConfig& config, const std::string& ort_web) {
  models::Sam sam = models::build_sam(config);
  io::load_state_dict(*sam, sam_entries, "", a.student);
  const onnx::Exported e = onnx::export_onnx(*sam, a.out, a.onnx);
  std::cout << "wrote " << e.encoder_path << " (" << e.encoder_bytes << " bytes, "
            << models::preset_name(config) << " encoder) and " << e.decoder_path << " ("
            << e.decoder_bytes << " bytes"
            << (a.onnx.return_single_mask ? ", single mask" : ", all masks")
            << (a.onnx.int8 ? ", int8 weights" : "") << ")"
            << (e.encoder_external || e.decoder_external ? ", large initializers in *.onnx.data"
                                                         : "")
            << "\n";
  if (!a.web.empty())
    std::cout << "wrote " << onnx::write_web_page(a.web, a.out, ort_web) << " (serve " << a.web
              << " over http, e.g. python3 -m http.server -d " << a.web << ", and open it)\n";
}

// An existing --out is replaced only with --overwrite; pt writes a file, onnx a folder.
void check_out(const ExportArgs& a) {
  const bool onnx = a.format == "onnx";
  if (onnx && fs::exists(a.out) && !fs::is_directory(a.out))
    throw Error("export: --out '" + a.out + "' is a file; --format onnx writes a folder");
  if (!onnx && fs::is_directory(a.out))
    throw Error("export: --out '" + a.out + "' is a folder, not a file");
  const bool taken = onnx ? fs::exists(fs::path(a.out) / "encoder.onnx") ||
                                fs::exists(fs::path(a.out) / "decoder.onnx")
                          : fs::exists(a.out);
  if (!a.web.empty()) {
    if (!onnx) throw Error("--web is an option of --format onnx");
    if (a.onnx.external_data > 0)
      throw Error("--web: the page loads models without external data; leave out --external-data");
    if (fs::exists(a.web) && !fs::is_directory(a.web))
      throw Error("export: --web '" + a.web + "' is a file, not a folder");
    if (fs::exists(fs::path(a.web) / "index.html") && !a.overwrite)
      throw Error("export: --web '" + a.web +
                  "' holds a page: give --overwrite to replace it, or another --web");
  }
  if (taken && !a.overwrite)
    throw Error("export: --out '" + a.out + "' " + (onnx ? "holds an ONNX export" : "exists") +
                ": give --overwrite to replace it, or another --out");
}

void run_export(const ExportArgs& a) {
  check_out(a);
  const std::string ort_web = a.web.empty() ? "" : onnx::find_ort_web(a.ort_web);
  const io::Weights student = io::read_weights(a.student);
  const models::EncoderConfig config =
      models::encoder_config_of(student, a.student_model, "--student-model");
  // A fine-tuned student (finetune's final.pth) brings its own prompt encoder and mask decoder.
  const std::string decoder_from = a.decoder_from.empty() ? student.file : a.decoder_from;
  io::StateDict sam = models::assemble_sam(student.encoder(), config, decoder_from);
  if (a.format == "onnx") return write_onnx(a, sam, config, ort_web);
  if (a.onnx.return_single_mask || a.onnx.int8 || a.onnx.external_data > 0)
    throw Error(
        "--return-single-mask, --quantize and --external-data are options of --format onnx");
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
      "MobileSAM; or, with --format onnx, the encoder and SAM's ONNX decoder as ONNX models");
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
  cmd->add_option("--out", a->out,
                  "Output checkpoint (e.g. mobile_sam.pt); with --format onnx, the folder for "
                  "encoder.onnx and decoder.onnx")
      ->required();
  cmd->add_option("--format", a->format,
                  "pt: a PyTorch checkpoint; onnx: encoder.onnx (1x3x1024x1024 normalised, "
                  "padded image -> 1x256x64x64 embedding) and decoder.onnx (the inputs and "
                  "outputs of SAM's ONNX decoder), opset 17")
      ->check(CLI::IsMember({"pt", "onnx"}));
  cmd->add_flag("--return-single-mask", a->onnx.return_single_mask,
                "ONNX decoder: return the one best mask (as SAM's export script's option), not "
                "all four");
  cmd->add_option_function<std::string>(
         "--quantize", [a](const std::string&) { a->onnx.int8 = true; },
         "int8: ONNX weights of the matrix products and convolutions as int8 with per-channel "
         "scales (activations of the products quantised dynamically)")
      ->check(CLI::IsMember({"int8"}));
  cmd->add_option("--external-data", a->onnx.external_data,
                  "With --format onnx: initializers of at least this many bytes go to "
                  "encoder.onnx.data / decoder.onnx.data beside the models (ONNX's external "
                  "data); default: only for a model over protobuf's 2 GiB (ViT-H's encoder), "
                  "then every initializer of 1024 bytes or more")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--web", a->web,
                  "With --format onnx: also write a page to this folder (index.html, app.js, "
                  "onnxruntime-web's WebAssembly files, the two models) that segments an opened "
                  "image in the browser; serve the folder over http");
  cmd->add_option("--ort-web", a->ort_web,
                  "onnxruntime-web's package folder for --web (default: $SAMDISTILL_ORT_WEB, "
                  "else node_modules/onnxruntime-web here or in a folder above)");
  cmd->add_flag(
      "--overwrite", a->overwrite,
      "Replace an existing --out (with --format onnx: its encoder.onnx and decoder.onnx)");
  cmd->callback([a] { run_export(*a); });
}

}  // namespace sd::cli
