#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/shared_options.h"
#include "store/embed.h"
#include "util/log.h"
#include "util/names.h"
#include "util/stop_signal.h"

namespace sd::cli {
namespace {

struct EmbedArgs {
  store::EmbedOptions options;
  std::string dtype = "fp16";
  std::string shard = "0/1";
  bool json = false;
};

void run_embed(EmbedArgs& args, const distributed::World& world) {
  args.options.dtype = store::parse_embedding_dtype(args.dtype);
  store::parse_shard(args.shard, args.options);
  // Under a launcher each rank writes its own part of the one store, an interleaved slice of
  // --shard's slice: shard i/N of rank r of W is shard i + N r of N W.
  store::EmbedOptions& o = args.options;
  o.shard_index += o.shard_count * world.rank;
  o.shard_count *= world.size;
  store::EmbedSummary summary = store::embed(args.options);
  if (args.json) {
    std::cout << json_text(summary.to_json()) << "\n";
    return;
  }
  std::cout << "selected      " << summary.selected << "\n"
            << "already done  " << summary.already_done << "\n"
            << "embedded      " << summary.embedded << "\n"
            << "skipped       " << summary.skipped.size() << "\n";
  for (const data::Skip& s : summary.skipped) std::cout << "  " << data::describe(s) << "\n";
  if (args.options.cache_images && summary.embedded > 0)
    std::cout << "cached images " << summary.image_bytes / summary.embedded << " bytes per image\n";
  std::cout << "time          " << summary.seconds << " s ("
            << (summary.seconds > 0 ? summary.embedded / summary.seconds : 0.0) << " images/s)\n";
}

}  // namespace

void add_embed_command(CLI::App& app, const Globals& globals) {
  auto args = std::make_shared<EmbedArgs>();
  store::EmbedOptions& o = args->options;
  CLI::App* cmd = app.add_subcommand(
      "embed", "Run the frozen teacher over images into an embedding store (resumable)");
  cmd->add_option(
      "--teacher", o.teacher,
      "Teacher architecture: vit_h, vit_l, vit_b, vit_t or a JSON config (default: what "
      "--teacher-checkpoint holds)");
  cmd->add_option("--teacher-checkpoint", o.teacher_checkpoint,
                  "Teacher weights: a SAM checkpoint (image_encoder.*), an encoder state dict or a "
                  "run folder")
      ->required();
  add_data_options(cmd, o.data, o.images)->required();
  add_subset_options(cmd, o.subset);
  cmd->add_option("--store", o.store, "Embedding store folder (created, or continued)")->required();
  cmd->add_option("--batch-size", o.batch_size, "Images per teacher forward")
      ->capture_default_str();
  cmd->add_option("--device", o.device, "cpu, cuda or auto (cuda when present)")
      ->capture_default_str();
  add_amp_option(cmd, o.amp);
  cmd->add_option("--dtype", args->dtype,
                  "Stored values: fp16, bf16, fp32 or int8 (per-channel scales)")
      ->capture_default_str();
  cmd->add_option("--shard", args->shard,
                  "Embed the i-th of N interleaved slices of the subset (i/N)")
      ->capture_default_str();
  cmd->add_flag("--cache-images", o.cache_images, "Also store each resized uint8 image");
  cmd->add_flag("--strict", o.strict,
                "Stop with an error at the first bad record: image, JSON or RLE (default: skip "
                "it, listed)");
  cmd->add_flag("--json", args->json, "Print the summary as JSON");
  cmd->callback([args, &globals] {
    catch_stop_signals();  // a signal stops after the batch being committed
    run_embed(*args, globals.world);
  });
}

}  // namespace sd::cli
