#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "io/checkpoint_summary.h"
#include "io/weights.h"
#include "models/sam_weights.h"
#include "util/names.h"

namespace sd::cli {
namespace {

using nlohmann::json;

struct CheckpointArgs {
  std::string file;
  bool json = false;
  bool keys = false;
};

std::string joined(const json& list, const char* sep) {
  std::string out;
  for (const auto& v : list) out += (out.empty() ? "" : sep) + v.dump();
  return out;
}

// "TinyViT (embed_dims 64/128/160/320, depths 2/2/6/2): vit_t, under 'image_encoder.'"
std::string describe_encoder(const json& e) {
  if (e.is_null()) return "none recognised";
  std::string sizes;
  for (const std::string& key : models::encoder_family(e["family"]).summary_keys())
    if (e.contains(key))
      sizes += (sizes.empty() ? "" : ", ") + key + " " +
               (e[key].is_array() ? joined(e[key], "/") : e[key].dump());
  std::string where =
      e["prefix"] == "" ? "encoder only" : "under '" + e["prefix"].get<std::string>() + "'";
  return e["family"].get<std::string>() + " (" + sizes + "): " + e["preset"].get<std::string>() +
         ", " + where;
}

// A training checkpoint's progress, optimiser, config and how to resume from it.
void print_training(const json& t) {
  std::cout << "training    step " << t["step"] << ", epoch " << t["epoch"] << ", position "
            << t["position"] << " (images of the epoch done)\n"
            << "optimiser   " << t["optimizer_bytes"] << " bytes of state\n"
            << "store       " << t["store_id"].get<std::string>() << "\n"
            << "config\n";
  for (const auto& [key, value] : t["config"].items())
    std::cout << "  " << std::left << std::setw(22) << key << std::right << " "
              << (value.is_string() ? value.get<std::string>() : value.dump()) << "\n";
  std::cout << "resume      " << t["resume"].get<std::string>() << "\n";
}

void print_table(const json& s) {
  std::cout << "file        " << s["file"].get<std::string>() << "\n"
            << "keys        " << s["keys"] << "\n"
            << "parameters  " << s["parameters"] << "\n"
            << "bytes       " << s["bytes"] << "\n"
            << "encoder     " << describe_encoder(s["encoder"]) << "\n"
            << "dtypes     ";
  for (const auto& [name, count] : s["dtypes"].items()) std::cout << " " << name << " " << count;
  std::cout << "\nprefixes\n";
  for (const auto& p : s["prefixes"])
    std::cout << "  " << std::left << std::setw(20) << p["prefix"].get<std::string>() << std::right
              << " " << std::setw(7) << p["keys"] << " keys " << std::setw(12) << p["parameters"]
              << " parameters\n";
  if (s.contains("training")) print_training(s["training"]);
  if (!s.contains("entries")) return;
  std::cout << "entries\n";
  for (const auto& e : s["entries"])
    std::cout << "  " << e[0].get<std::string>() << "  " << e[1].dump() << "  "
              << e[2].get<std::string>() << "\n";
}

void run_checkpoint(const CheckpointArgs& args) {
  const json summary =
      io::summarize_checkpoint(io::resolve_weights(args.file), args.keys, models::encoder_summary);
  if (args.json)
    std::cout << json_text(summary) << "\n";
  else
    print_table(summary);
}

}  // namespace

void add_checkpoint_command(CLI::App& app, const Globals& globals) {
  auto args = std::make_shared<CheckpointArgs>();
  CLI::App* cmd = app.add_subcommand(
      "checkpoint",
      "Summarise a torch.save checkpoint: keys, parameters, dtypes, prefixes, encoder preset; for "
      "a training checkpoint also its step, epoch, optimiser state, config and how to resume");
  cmd->add_option("file", args->file,
                  "A .pth/.pt file written by torch.save (or by samdistill), or a run folder (its "
                  "final.pth, else its newest checkpoint)")
      ->required();
  cmd->add_flag("--json", args->json, "Print a JSON object instead of a table");
  cmd->add_flag("--keys", args->keys, "Also list every entry: [key, shape, dtype]");
  cmd->callback([args] { run_checkpoint(*args); });
}

}  // namespace sd::cli
