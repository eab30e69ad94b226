#include <filesystem>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/shared_options.h"
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

enum class Format { pt, onnx };
enum class Quantize { off, int8 };

struct ExportArgs {
  std::string student, student_model, decoder_from, out;
  Format format = Format::pt;
  bool return_single_mask = false;
  Quantize quantize = Quantize::off;
  int64_t external_data = 0;
  std::string web, ort_web;
  bool overwrite = false;
};

}  // namespace
}  // namespace sd::cli

namespace sd {
template <>
struct WordsOf<cli::Format> {
  static constexpr std::pair<cli::Format, const char*> list[] = {{cli::Format::pt, "pt"},
                                                                 {cli::Format::onnx, "onnx"}};
};
template <>
struct WordsOf<cli::Quantize> {
  static constexpr std::pair<cli::Quantize, const char*> list[] = {{cli::Quantize::off, "off"},
                                                                   {cli::Quantize::int8, "int8"}};
};
}  // namespace sd

namespace sd::cli {
namespace {

using io::any_value;
using io::field;

// export's options, each once.
const io::ConfigTable<ExportArgs>& export_table() {
  using E = ExportArgs;
  static const io::ConfigTable<E> table = io::agreeing(io::ConfigTable<E>({
      field("student", &E::student, "", any_value(),
            "Student weights: a run folder (its final.pth, else newest checkpoint) or a file"),
      field("student_model", &E::student_model, "", any_value(),
            "Student architecture: preset or JSON config (default: --student's run's, else what "
            "--student holds)"),
      field("decoder_from", &E::decoder_from, "", any_value(),
            "Full SAM checkpoint whose prompt encoder and mask decoder to take (default: "
            "--student's own, when it is a full SAM checkpoint such as a finetune run's)"),
      field("out", &E::out, "", any_value(),
            "Output checkpoint (e.g. mobile_sam.pt); with --format onnx, the folder for "
            "encoder.onnx and decoder.onnx"),
      field("format", &E::format, Format::pt, any_value(),
            "pt: a PyTorch checkpoint; onnx: encoder.onnx (1x3x1024x1024 normalised, padded "
            "image -> 1x256x64x64 embedding) and decoder.onnx (the inputs and outputs of SAM's "
            "ONNX decoder), opset 17"),
      field("return_single_mask", &E::return_single_mask, false, any_value(),
            "ONNX decoder: return the one best mask (as SAM's export script's option), not all "
            "four"),
      field("quantize", &E::quantize, Quantize::off, any_value(),
            "int8: ONNX weights of the matrix products and convolutions as int8 with per-channel "
            "scales (activations of the products quantised dynamically)"),
      field("external_data", &E::external_data, int64_t{0}, io::non_negative(),
            "With --format onnx: initializers of at least this many bytes go to "
            "encoder.onnx.data / decoder.onnx.data beside the models (ONNX's external data); 0: "
            "only for a model over protobuf's 2 GiB (ViT-H's encoder), then every initializer of "
            "1024 bytes or more"),
      field("web", &E::web, "", any_value(),
            "With --format onnx: also write a page to this folder (index.html, app.js, "
            "onnxruntime-web's WebAssembly files, the two models) that segments an opened image "
            "in the browser; serve the folder over http"),
      field("ort_web", &E::ort_web, "", any_value(),
            "onnxruntime-web's package folder for --web (default: $SAMDISTILL_ORT_WEB, else "
            "node_modules/onnxruntime-web here or in a folder above)"),
      field("overwrite", &E::overwrite, false, any_value(),
            "Replace an existing --out (with --format onnx: its encoder.onnx and decoder.onnx)"),
  }));
  return table;
}

// The assembled SAM as DIR/encoder.onnx and DIR/decoder.onnx.
// With --web, the page too (ort_web: onnxruntime-web's folder).
void write_onnx(const ExportArgs& a, models::SamImpl& sam, const models::EncoderConfig& config,
                const std::string& ort_web) {
  const onnx::ExportOptions options{a.return_single_mask, a.quantize == Quantize::int8,
                                    static_cast<size_t>(a.external_data)};
  const onnx::Exported e = onnx::export_onnx(sam, config, a.out, options);
  std::cout << "wrote " << e.encoder_path << " (" << e.encoder_bytes << " bytes, "
            << models::preset_name(config) << " encoder) and " << e.decoder_path << " ("
            << e.decoder_bytes << " bytes"
            << (options.return_single_mask ? ", single mask" : ", all masks")
            << (options.int8 ? ", int8 weights" : "") << ")"
            << (e.encoder_external || e.decoder_external ? ", large initializers in *.onnx.data"
                                                         : "")
            << "\n";
  if (!a.web.empty())
    std::cout << "wrote " << onnx::write_web_page(a.web, a.out, ort_web) << " (serve " << a.web
              << " over http, e.g. python3 -m http.server -d " << a.web << ", and open it)\n";
}

// An existing --out is replaced only with --overwrite; pt writes a file, onnx a folder.
void check_out(const ExportArgs& a) {
  const bool onnx = a.format == Format::onnx;
  if (onnx && fs::exists(a.out) && !fs::is_directory(a.out))
    throw Error("export: --out '" + a.out + "' is a file; --format onnx writes a folder");
  if (!onnx && fs::is_directory(a.out))
    throw Error("export: --out '" + a.out + "' is a folder, not a file");
  const bool taken = onnx ? fs::exists(fs::path(a.out) / "encoder.onnx") ||
                                fs::exists(fs::path(a.out) / "decoder.onnx")
                          : fs::exists(a.out);
  if (!a.web.empty()) {
    if (!onnx) throw Error("--web is an option of --format onnx");
    if (a.external_data > 0)
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
  // The files read are let go once the model holds their weights (a ViT-H's are 2.5 GB).
  auto [model, config] = [&a] {
    const io::Weights student = io::read_weights(a.student);
    const models::EncoderConfig config =
        models::encoder_config_of(student, a.student_model, "--student-model");
    // A fine-tuned student (finetune's final.pth) brings its own prompt encoder and decoder.
    const bool own_decoder = a.decoder_from.empty() || a.decoder_from == student.file;
    const io::StateDict decoder_source =
        own_decoder ? io::StateDict() : io::read_state_dict(a.decoder_from);
    return std::make_pair(models::assemble_sam(student.encoder(), config,
                                               own_decoder ? student.entries : decoder_source,
                                               own_decoder ? student.file : a.decoder_from),
                          config);
  }();
  if (a.format == Format::onnx) return write_onnx(a, *model, config, ort_web);
  if (a.return_single_mask || a.quantize != Quantize::off || a.external_data > 0)
    throw Error(
        "--return-single-mask, --quantize and --external-data are options of --format onnx");
  const io::StateDict sam = io::state_dict(*model);  // the official order
  io::write_state_dict(a.out, sam);
  std::cout << "wrote " << a.out << ": " << sam.size() << " entries, " << io::count_parameters(sam)
            << " parameters (" << models::preset_name(config) << " encoder)\n";
}

}  // namespace

void add_export_command(CLI::App& app, const Globals&) {
  auto given = std::make_shared<KeyFlags>();
  CLI::App* cmd = app.add_subcommand(
      "export",
      "Write a full SAM checkpoint (student encoder + the teacher's, or a fine-tuned, prompt "
      "encoder and mask decoder) under the official key names, loadable by torch.load and "
      "MobileSAM; or, with --format onnx, the encoder and SAM's ONNX decoder as ONNX models");
  add_key_flags(cmd, *given, export_table().keys(), {{"student", {"", true}}, {"out", {"", true}}});
  cmd->callback([given] { run_export(read_flags(*given, export_table())); });
}

}  // namespace sd::cli
