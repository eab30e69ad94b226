#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/shared_options.h"
#include "models/config.h"
#include "store/embed.h"
#include "util/log.h"
#include "util/names.h"
#include "util/stop_signal.h"

namespace sd::cli {
namespace {

struct EmbedArgs {
  store::EmbedOptions options;
  std::string shard = "0/1";
  bool json = false;
};

using io::any_value;
using io::field;

// embed's options, each once.
const io::ConfigTable<EmbedArgs>& embed_table() {
  using O = store::EmbedOptions;
  auto embedding_dtype = [] {
    io::Field<O> f =
        field("dtype", &O::dtype, store::DType::fp16,
              io::Check{[](store::DType d, const O&) { return d != store::DType::uint8; },
                        "must be fp16, bf16, fp32 or int8 (uint8 is for images)"},
              "Stored values: fp16, bf16, fp32 or int8 (per-channel scales)");
    f.info.type = "fp16|bf16|fp32|int8";
    return f;
  };
  static const io::ConfigTable<EmbedArgs> table = io::agreeing(
      io::ConfigTable<O>(
          {
              field("teacher", &O::teacher, "", any_value(),
                    "Teacher architecture: " + models::encoder_presets_in_words() +
                        " or a JSON config (default: what --teacher-checkpoint holds)"),
              field(
                  "teacher_checkpoint", &O::teacher_checkpoint, "", any_value(),
                  "Teacher weights: a SAM checkpoint (image_encoder.*), an encoder state dict or a "
                  "run folder"),
          })
          .plus(data_fields<O>())
          .plus(subset_table().as_part_of(&O::subset).fields())
          .plus({
              field("store", &O::store, "", any_value(),
                    "Embedding store folder (created, or continued)"),
              field("batch_size", &O::batch_size, 1, io::positive(), "Images per teacher forward"),
              device_field(&O::device),
              amp_field(&O::amp),
              embedding_dtype(),
              field("cache_images", &O::cache_images, false, any_value(),
                    "Also store each resized uint8 image"),
              field("strict", &O::strict, false, any_value(),
                    "Stop with an error at the first bad record: image, JSON or RLE (default: "
                    "skip it, listed)"),
          })
          .as_part_of(&EmbedArgs::options)
          .plus({
              field("shard", &EmbedArgs::shard, "0/1", any_value(),
                    "Embed the i-th of N interleaved slices of the subset (i/N)"),
              field("json", &EmbedArgs::json, false, any_value(), "Print the summary as JSON"),
          }));
  return table;
}

void run_embed(const KeyFlags& given, const distributed::World& world) {
  EmbedArgs args = read_flags(given, embed_table());
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
  auto given = std::make_shared<KeyFlags>();
  CLI::App* cmd = app.add_subcommand(
      "embed", "Run the frozen teacher over images into an embedding store (resumable)");
  add_key_flags(cmd, *given, embed_table().keys(),
                {{"teacher_checkpoint", {"", true}}, {"data", {"", true}}, {"store", {"", true}}});
  cmd->callback([given, &globals] {
    catch_stop_signals();  // a signal stops after the batch being committed
    run_embed(*given, globals.world);
  });
}

}  // namespace sd::cli
