#include "models/sam_weights.h"

#include <vector>

#include "io/checkpoint.h"
#include "models/sam.h"
#include "util/error.h"

namespace sd::models {
namespace {

using nlohmann::json;

// The width a ratio key of a config multiplies (int(width * ratio) is the hidden width).
int64_t ratio_width(const std::string& key, const json& observed) {
  if (observed.contains("embed_dim")) return observed["embed_dim"];
  return observed["embed_dims"].at(key == "mbconv_expand_ratio" ? 0 : 1);
}

// A value of `config` (to_json) against what the weights show; null shows nothing.
bool same(const std::string& key, const json& given, const json& shown, const json& observed) {
  if (shown.is_null()) return true;
  if (key == "mlp_ratio" || key == "mbconv_expand_ratio") {
    const double width = double(ratio_width(key, observed));
    return int64_t(width * given.get<double>()) == int64_t(width * shown.get<double>());
  }
  if (!shown.is_array()) return given == shown;
  if (!given.is_array() || given.size() != shown.size()) return false;
  for (size_t i = 0; i < shown.size(); ++i)
    if (!same(key, given[i], shown[i], observed)) return false;
  return true;
}

// "key N there, M in <what>" for each size of `observed` that `config` does not have.
std::vector<std::string> differences(const json& config, const json& observed,
                                     const std::string& what) {
  const bool tiny = observed["family"] == "TinyViT";
  if (tiny != config.contains("embed_dims"))
    return {"a " + observed["family"].get<std::string>() + " there, a " +
            (tiny ? "ViT" : "TinyViT") + " in " + what};
  std::vector<std::string> out;
  for (const auto& [key, shown] : observed.items())
    if (key != "family" && key != "prefix" && !same(key, config.at(key), shown, observed))
      out.push_back(key + " " + shown.dump() + " there, " + config.at(key).dump() + " in " + what);
  return out;
}

std::string describe(const json& observed) {
  const std::string preset = preset_matching(observed);
  return (preset == "custom" ? "custom " : preset + " ") + observed["family"].get<std::string>() +
         " encoder";
}

// The config of what the weights show; the first TinyViT stage has no attention, so its
// heads and window (which nothing uses) are vit_t's.
EncoderConfig config_shown(json observed, const std::string& file, const std::string& flag) {
  const bool tiny = observed["family"] == "TinyViT";
  if (!observed.contains("num_heads"))
    throw Error("'" + file + "' does not show its encoder's attention heads (" +
                (tiny ? "no attention biases" : "no relative position tables") + "): give " + flag);
  observed.erase("family");
  observed.erase("prefix");
  if (tiny) {
    const json vit_t = to_json(TinyViTConfig{});
    for (const char* key : {"num_heads", "window_sizes"})
      for (size_t i = 0; i < observed[key].size() && i < vit_t[key].size(); ++i)
        if (observed[key][i].is_null()) observed[key][i] = vit_t[key][i];
  }
  return encoder_config_from_json(observed, "the encoder of '" + file + "'");
}

std::string joined(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& part : parts) out += (out.empty() ? "" : "; ") + part;
  return out;
}

// Why `config` (named `what`) does not fit `weights`; "" when it does.
std::string misfit(const EncoderConfig& config, const std::string& what,
                   const io::Weights& weights) {
  const json observed = io::observe_encoder(weights.entries);
  if (observed.is_null()) return "";  // nothing to compare: strict loading names the keys
  const std::vector<std::string> diff = differences(to_json(config), observed, what);
  if (diff.empty()) return "";
  return what + " does not fit the weights '" + weights.file + "', which hold a " +
         describe(observed) + ": " + joined(diff);
}

}  // namespace

void check_fits(const EncoderConfig& config, const std::string& what, const io::Weights& weights) {
  const std::string why = misfit(config, what, weights);
  if (!why.empty()) throw Error(why);
}

Sam load_sam(const std::string& checkpoint, const std::string& model, const std::string& flag,
             const std::string& decoder_from) {
  const io::Weights weights = io::read_weights(checkpoint);
  Sam sam = build_sam(encoder_config_of(weights, model, flag));
  io::load_state_dict(*sam->image_encoder, weights.encoder(), "", weights.file);
  const std::string heads = decoder_from.empty() ? weights.file : io::resolve_weights(decoder_from);
  if (!load_sam_heads(*sam, decoder_from.empty() ? weights.entries : io::read_state_dict(heads),
                      heads))
    throw Error("'" + heads + "' holds " +
                (decoder_from.empty() ? "an image encoder alone (a train run's weights)"
                                      : "no prompt encoder and mask decoder") +
                ": give --decoder-from with the teacher's full SAM checkpoint, or make a full "
                "checkpoint first: samdistill export --student " +
                checkpoint +
                " --decoder-from TEACHER.pth --out student_sam.pth (or samdistill finetune)");
  sam->eval();
  return sam;
}

EncoderConfig encoder_config_of(const io::Weights& weights, const std::string& model,
                                const std::string& flag) {
  auto given = [&](const std::string& name, const std::string& what, const std::string& hint) {
    EncoderConfig config;
    try {
      config = resolve_encoder(name);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (" + what + ")");
    }
    const std::string why = misfit(config, what, weights);
    if (!why.empty()) throw Error(why + " (" + hint + ")");
    return config;
  };
  if (!model.empty())
    return given(model, flag + " '" + model + "'",
                 "leave " + flag + " out to use the weights' own");
  if (!weights.run_model.empty())
    return given(weights.run_model,
                 "the student_model '" + weights.run_model + "' of " + weights.run_config,
                 "give " + flag);
  const json observed = io::observe_encoder(weights.entries);
  if (observed.is_null())
    throw Error("'" + weights.file +
                "' holds no SAM / MobileSAM image encoder (image_encoder.patch_embed.*): give " +
                flag + " or other weights");
  return config_shown(observed, weights.file, flag);
}

std::string preset_matching(const json& observed) {
  for (const std::string& preset : encoder_presets())
    if (differences(to_json(encoder_preset(preset)), observed, preset).empty()) return preset;
  return "custom";
}

std::shared_ptr<ImageEncoder> load_image_encoder(const EncoderConfig& config,
                                                 const io::Weights& weights) {
  std::shared_ptr<ImageEncoder> encoder = make_image_encoder(config);
  io::load_state_dict(*encoder, weights.encoder(), "", weights.file);
  return encoder;
}

io::StateDict assemble_sam(const io::StateDict& student_encoder,
                           const EncoderConfig& student_config, const std::string& decoder_from) {
  io::StateDict decoder_source = io::read_state_dict(decoder_from);
  io::StateDict out;
  for (const auto& [key, value] : student_encoder) out.emplace_back("image_encoder." + key, value);
  size_t taken = 0;
  for (const auto& entry : decoder_source) {
    if (entry.first.rfind("prompt_encoder.", 0) == 0 ||
        entry.first.rfind("mask_decoder.", 0) == 0) {
      out.push_back(entry);
      ++taken;
    }
  }
  if (taken == 0)
    throw Error("'" + decoder_from +
                "' has no prompt_encoder.* / mask_decoder.* entries: "
                "--decoder-from needs a full SAM checkpoint");
  Sam sam = build_sam(student_config);
  io::load_state_dict(*sam, out, "", "the exported checkpoint");
  return io::state_dict(*sam);  // official order
}

}  // namespace sd::models
