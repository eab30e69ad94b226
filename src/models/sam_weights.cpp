#include "models/sam_weights.h"

#include <map>
#include <vector>

#include "io/checkpoint.h"
#include "models/sam.h"
#include "util/error.h"
#include "util/text.h"

namespace sd::models {
namespace {

using nlohmann::json;

// A value of `config` (to_json) against what the weights show; null shows nothing.
bool same(const EncoderFamily& family, const std::string& key, const json& given, const json& shown,
          const json& observed) {
  if (shown.is_null()) return true;
  if (const int64_t width = family.ratio_width(key, observed)) {
    return int64_t(double(width) * given.get<double>()) ==
           int64_t(double(width) * shown.get<double>());
  }
  if (!shown.is_array()) return given == shown;
  if (!given.is_array() || given.size() != shown.size()) return false;
  for (size_t i = 0; i < shown.size(); ++i)
    if (!same(family, key, given[i], shown[i], observed)) return false;
  return true;
}

bool is_size(const std::string& key) { return key != "family" && key != "prefix"; }

// "key N there, M in <what>" for each size of `observed` that `config` does not have.
std::vector<std::string> differences(const EncoderConfig& config, const json& observed,
                                     const std::string& what) {
  const EncoderFamily& family = config.family();
  if (observed["family"] != family.name())
    return {"a " + observed["family"].get<std::string>() + " there, a " + family.name() + " in " +
            what};
  const json given = to_json(config);
  std::vector<std::string> out;
  for (const auto& [key, shown] : observed.items())
    if (is_size(key) && !same(family, key, given.at(key), shown, observed))
      out.push_back(key + " " + shown.dump() + " there, " + given.at(key).dump() + " in " + what);
  return out;
}

std::string describe(const json& observed) {
  const std::string preset = preset_matching(observed);
  return (preset == "custom" ? "custom " : preset + " ") + observed["family"].get<std::string>() +
         " encoder";
}

// `base` (to_json) with what the weights show put in: a list element they do not show
// stays base's.
json put_shown(json base, const json& observed) {
  for (const auto& [key, shown] : observed.items()) {
    if (!is_size(key)) continue;
    if (!shown.is_array() || !base[key].is_array() || base[key].size() != shown.size()) {
      base[key] = shown;
      continue;
    }
    for (size_t i = 0; i < shown.size(); ++i)
      if (!shown[i].is_null()) base[key][i] = shown[i];
  }
  return base;
}

// The config of what the weights show; what they cannot show is the family's default's.
EncoderConfig config_of_shown(const json& observed, const std::string& file,
                              const std::string& flag) {
  const std::string name = observed["family"];  // a named string: g++ 14 warns of a temporary
  const EncoderFamily& family = encoder_family(name);
  const std::string unshown = family.unshown(observed);
  if (!unshown.empty()) throw Error("'" + file + "' does not show " + unshown + ": give " + flag);
  return config_shown(observed, family.from_json(json::object(), "defaults"),
                      "the encoder of '" + file + "'");
}

std::string joined(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& part : parts) out += (out.empty() ? "" : "; ") + part;
  return out;
}

// Why `config` (named `what`) does not fit `weights`; "" when it does.
std::string misfit(const EncoderConfig& config, const std::string& what,
                   const io::Weights& weights) {
  const json observed = observe_encoder(weights.entries);
  if (observed.is_null()) return "";  // nothing to compare: strict loading names the keys
  const std::vector<std::string> diff = differences(config, observed, what);
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
    const EncoderConfig config = [&] {
      try {
        return resolve_encoder(name);
      } catch (const Error& e) {
        throw Error(std::string(e.what()) + " (" + what + ")");
      }
    }();
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
  const json observed = observe_encoder(weights.entries);
  if (observed.is_null())
    throw Error("'" + weights.file + "' holds no image encoder of a known family (" +
                encoder_families_in_words() + ") under 'image_encoder.' or at the top: give " +
                flag + " or other weights");
  return config_of_shown(observed, weights.file, flag);
}

std::string preset_matching(const json& observed) {
  for (const std::string& preset : encoder_presets())
    if (differences(encoder_preset(preset), observed, preset).empty()) return preset;
  return "custom";
}

json observe_encoder(const io::StateDict& entries) {
  std::map<std::string, std::vector<int64_t>> sizes;
  for (const auto& [key, t] : entries) sizes[key] = t.sizes().vec();
  const WeightShapes shapes(std::move(sizes));
  for (const std::string prefix : {"image_encoder.", ""})
    for (const EncoderFamily* family : encoder_families()) {
      json j = family->observe(shapes, prefix);
      if (j.is_null()) continue;
      j["family"] = family->name();
      j["prefix"] = prefix;
      return j;
    }
  return nullptr;
}

json encoder_summary(const io::StateDict& entries) {
  const json e = observe_encoder(entries);
  if (e.is_null()) return e;
  json out = {{"family", e["family"]}, {"prefix", e["prefix"]}};
  for (const std::string& key : encoder_family(e["family"]).summary_keys())
    if (e.contains(key)) out[key] = e[key];
  out["preset"] = preset_matching(out);  // the preset of the sizes shown
  return out;
}

EncoderConfig config_shown(const json& observed, const EncoderConfig& base,
                           const std::string& source) {
  if (observed["family"] != base.family().name())
    throw Error(source + ": a " + observed["family"].get<std::string>() + ", not a " +
                base.family().name());
  return base.family().from_json(put_shown(to_json(base), observed), source);
}

std::shared_ptr<ImageEncoder> load_image_encoder(const EncoderConfig& config,
                                                 const io::Weights& weights) {
  std::shared_ptr<ImageEncoder> encoder = make_image_encoder(config);
  io::load_state_dict(*encoder, weights.encoder(), "", weights.file);
  return encoder;
}

Sam assemble_sam(const io::StateDict& student_encoder, const EncoderConfig& student_config,
                 const io::StateDict& decoder_source, const std::string& decoder_from) {
  io::StateDict out;
  for (const auto& [key, value] : student_encoder) out.emplace_back("image_encoder." + key, value);
  size_t taken = 0;
  for (const auto& entry : decoder_source) {
    if (starts_with(entry.first, "prompt_encoder.") || starts_with(entry.first, "mask_decoder.")) {
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
  return sam;
}

}  // namespace sd::models
