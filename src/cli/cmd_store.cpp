#include <ATen/ATen.h>
#include <ATen/core/Dict.h>

#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "io/checkpoint.h"
#include "store/reader.h"
#include "store/verify.h"
#include "store/writer.h"
#include "util/error.h"
#include "util/names.h"

namespace sd::cli {
namespace {

struct StoreArgs {
  std::string store, key, out;
  std::vector<std::string> from;
  bool json = false;
};

void run_verify(const StoreArgs& args) {
  store::VerifyReport report = store::verify_store(args.store);
  if (args.json) {
    std::cout << json_text(report.to_json()) << "\n";
  } else {
    for (const auto& note : report.notes) std::cout << "note: " << note << "\n";
    for (const auto& damage : report.damage) std::cout << "DAMAGED: " << damage << "\n";
    std::cout << report.records_ok << " records ok, " << report.damage.size() << " problems\n";
  }
  if (!report.ok())
    throw Error("store '" + args.store + "' is damaged (" + std::to_string(report.damage.size()) +
                " problems)");
}

void run_get(const StoreArgs& args) {
  store::Reader reader(args.store);
  c10::Dict<std::string, at::Tensor> dict;
  dict.insert("embedding", reader.embedding(args.key).unsqueeze(0));
  io::write_torch_file(args.out, dict);
  std::cout << "wrote " << args.out << "\n";
}

void run_stats(const StoreArgs& args) {
  nlohmann::json s = store::Reader(args.store).stats();
  if (args.json) {
    std::cout << json_text(s) << "\n";
    return;
  }
  const nlohmann::json& m = s["manifest"];
  std::cout << "store         " << args.store << " (" << s["parts"].size() << " parts)\n"
            << "embeddings    " << s["embeddings"] << " (" << s["embedding_bytes"] << " bytes, "
            << s["bytes_per_embedding"] << " per record)\n"
            << "images        " << s["images"] << " (" << s["image_bytes"] << " bytes, "
            << s["bytes_per_image"] << " per image)\n"
            << "duplicates    " << s["duplicates"] << "\n"
            << "dtype         " << m["dtype"].get<std::string>() << ", relative MSE vs fp32 "
            << s["relative_mse_vs_fp32"].dump() << "\n"
            << "teacher       " << m["teacher"].dump() << "\n"
            << "checkpoint    " << m["checkpoint_name"].get<std::string>() << " sha256 "
            << m["checkpoint_sha256"].get<std::string>() << "\n"
            << "preprocess    " << m["preprocess"].dump() << "\n";
}

void run_merge(const StoreArgs& args) {
  for (const auto& src : args.from) {
    size_t copied = store::merge_store(args.store, src);
    std::cout << "copied " << copied << " records from " << src << "\n";
  }
}

}  // namespace

void add_store_command(CLI::App& app, const Globals& globals) {
  CLI::App* cmd = app.add_subcommand("store", "Inspect, check and join embedding stores");
  cmd->require_subcommand(1);
  auto args = std::make_shared<StoreArgs>();
  auto store_option = [&](CLI::App* sub) {
    sub->add_option("--store", args->store, "Embedding store folder")->required();
  };

  CLI::App* verify =
      cmd->add_subcommand("verify", "Check every record and index entry; exit 1 on damage");
  store_option(verify);
  verify->add_flag("--json", args->json, "Print a JSON report");
  verify->callback([args] { run_verify(*args); });

  CLI::App* get = cmd->add_subcommand(
      "get", "Write one embedding as {\"embedding\": float32 1x256x64x64} (torch.load)");
  store_option(get);
  get->add_option("--key", args->key, "Image id, e.g. sa_100001")->required();
  get->add_option("--out", args->out, "Output .pth file")->required();
  get->callback([args] { run_get(*args); });

  CLI::App* stats = cmd->add_subcommand(
      "stats", "Counts, bytes, dtype, compact error and what produced the store");
  store_option(stats);
  stats->add_flag("--json", args->json, "Print JSON");
  stats->callback([args] { run_stats(*args); });

  CLI::App* merge =
      cmd->add_subcommand("merge", "Copy the records of other stores (e.g. shards) into --store");
  store_option(merge);
  merge->add_option("--from", args->from, "Store folder(s) to copy from")->required();
  merge->callback([args] { run_merge(*args); });
}

}  // namespace sd::cli
